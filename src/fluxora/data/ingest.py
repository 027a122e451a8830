"""The ingest step's library side: pick the configured source and write the raw canonical table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fluxora.config import DataConfig
from fluxora.data import io
from fluxora.data.safepaths import expand_inputs
from fluxora.data.schema import SERIES_ID
from fluxora.errors import ConfigError

if TYPE_CHECKING:
    import httpx
    import pandas as pd

SOURCES = ("synthetic", "file", "eia")


@dataclass(frozen=True)
class IngestSummary:
    source: str
    rows: int
    series: int
    files: list[str]


def ingest(cfg: DataConfig, target: Path, base: Path, client: httpx.Client | None = None) -> IngestSummary:
    """Write the raw table for `cfg.source` to `target`, joining weather when configured.

    File paths are confined to `cfg.roots` under `base`; `client` serves the HTTP connectors
    (tests pass one with a mock transport).
    """
    if cfg.weather.provider not in ("", "open_meteo"):
        raise ConfigError(f"invalid configuration: data.weather.provider: unknown provider {cfg.weather.provider!r}")
    summary = _load(cfg, target, base, client)
    if cfg.series:
        summary = _keep_series(cfg.series, target, summary)
    if cfg.weather.provider:
        _join_weather(cfg, target, client)
    return summary


def _load(cfg: DataConfig, target: Path, base: Path, client: httpx.Client | None) -> IngestSummary:
    if cfg.source == "synthetic":
        from fluxora.data.synthetic import generate

        df = generate(cfg)
        io.write_parquet(df, target)
        return IngestSummary("synthetic", len(df), int(df[SERIES_ID].nunique()), [])
    if cfg.source == "file":
        from fluxora.data.sources import SUFFIXES, ingest_to_parquet

        suffixes = {"csv": (".csv", ".csv.gz"), "parquet": (".parquet", ".pq")}.get(cfg.format, SUFFIXES)
        files = expand_inputs(cfg.path, cfg.roots, base, suffixes)
        stats = ingest_to_parquet(cfg, files, target)
        return IngestSummary("file", stats.rows, len(stats.series), stats.files)
    if cfg.source == "eia":
        from fluxora.data.connectors import eia

        if not (cfg.eia.start and cfg.eia.end):
            raise ConfigError("invalid configuration: data.eia.start and data.eia.end are required for source=eia")
        key = eia.api_key()
        with _client(client) as http:
            df = eia.demand(http, cfg.eia.respondents, _utc(cfg.eia.start), _utc(cfg.eia.end), key)
        io.write_parquet(df, target)
        return IngestSummary("eia", len(df), int(df[SERIES_ID].nunique()), [])
    known = ", ".join(SOURCES)
    raise ConfigError(f"invalid configuration: data.source: unknown source {cfg.source!r} (known: {known})")


def _keep_series(wanted: list[str], target: Path, summary: IngestSummary) -> IngestSummary:
    """Only the series in `data.series` (a subset to run on); an id the source lacks is an error."""
    import pandas as pd

    present = set(pd.read_parquet(target, columns=[SERIES_ID])[SERIES_ID].astype(str).unique())
    if missing := [sid for sid in wanted if sid not in present]:
        known = sorted(present)
        shown = ", ".join(known[:5]) + (", ..." if len(known) > 5 else "")
        raise ConfigError(
            f"invalid configuration: data.series: {missing[0]!r} is not in the data ({len(known)} series: {shown})"
        )
    df = pd.read_parquet(target)
    df = df[df[SERIES_ID].astype(str).isin(set(wanted))].reset_index(drop=True)
    io.write_parquet(df, target)
    return replace(summary, rows=len(df), series=int(df[SERIES_ID].nunique()))


def _join_weather(cfg: DataConfig, target: Path, client: httpx.Client | None) -> None:
    """Temperature from Open-Meteo at each series' location; reads and rewrites the raw table."""
    import pandas as pd

    from fluxora.data.connectors import open_meteo
    from fluxora.data.weather import join_temperature

    raw = pd.read_parquet(target)
    with _client(client) as http:

        def fetch(lat: float, lon: float, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
            return open_meteo.historical(http, lat, lon, first.date(), last.date())

        io.write_parquet(join_temperature(raw, cfg.weather, fetch), target)


@contextmanager
def _client(client: httpx.Client | None) -> Iterator[httpx.Client]:
    if client is not None:
        yield client
        return
    with httpx.Client(headers={"User-Agent": "fluxora"}, follow_redirects=True) as own:
        yield own


def _utc(text: str) -> pd.Timestamp:
    import pandas as pd

    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
