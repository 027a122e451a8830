"""The ingest step's library side: pick the configured source and write the raw canonical table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fluxora.config import DataConfig
from fluxora.data import io
from fluxora.data.safepaths import expand_inputs
from fluxora.data.schema import SERIES_ID
from fluxora.errors import ConfigError

SOURCES = ("synthetic", "file")


@dataclass(frozen=True)
class IngestSummary:
    source: str
    rows: int
    series: int
    files: list[str]


def ingest(cfg: DataConfig, target: Path, base: Path) -> IngestSummary:
    """Write the raw table for `cfg.source` to `target`; file paths are confined to `cfg.roots` under `base`."""
    if cfg.source == "synthetic":
        from fluxora.data.synthetic import generate

        df = generate(cfg)
        io.write_parquet(df, target)
        return IngestSummary("synthetic", len(df), int(df[SERIES_ID].nunique()), [])
    if cfg.source == "file":
        from fluxora.data.sources import SUFFIXES, ingest_to_parquet

        files = expand_inputs(cfg.path, cfg.roots, base, SUFFIXES)
        stats = ingest_to_parquet(cfg, files, target)
        return IngestSummary("file", stats.rows, len(stats.series), stats.files)
    raise ConfigError(f"invalid configuration: data.source: unknown source {cfg.source!r} (known: {', '.join(SOURCES)})")
