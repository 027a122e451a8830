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
    size = batch_size(cfg)
    summary = _load(cfg, target, base, client, size)
    if cfg.series:
        summary = (
            _keep_series(cfg.series, target, summary)
            if size == 0
            else _keep_series_streamed(cfg.series, target, summary)
        )
    if cfg.weather.provider:
        if size == 0:
            _join_weather(cfg, target, client)
        else:
            _join_weather_streamed(cfg, target, client)
    return summary


def batch_size(cfg: DataConfig) -> int:
    """`data.batch_series`: how many series ingest and the gate hold at a time (0 = all at once)."""
    size = cfg.batch_series
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ConfigError(
            f"invalid configuration: data.batch_series: must be a whole number >= 0 "
            f"(series held in memory at a time; 0 = all at once), got {size!r}"
        )
    return size


def _load(cfg: DataConfig, target: Path, base: Path, client: httpx.Client | None, size: int) -> IngestSummary:
    if cfg.source == "synthetic":
        from fluxora.data.synthetic import generate, generate_chunks

        if size > 0:  # chunk by chunk (`CHUNK` series each): memory holds one chunk
            file = io.ParquetAppender(target)
            series = 0
            try:
                for chunk in generate_chunks(cfg):
                    file.append(chunk)
                    series += int(chunk[SERIES_ID].nunique())
            except BaseException:
                file.discard()
                raise
            file.commit()
            return IngestSummary("synthetic", file.rows, series, [])
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


def _keep_series_streamed(wanted: list[str], target: Path, summary: IngestSummary) -> IngestSummary:
    """`_keep_series` row group by row group (rows stay in file order); memory holds one row group."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(target)
    present: set[str] = set()
    for i in range(source.metadata.num_row_groups):
        ids = pc.cast(source.read_row_group(i, columns=[SERIES_ID]).column(0), pa.string())
        present.update(v for v in pc.unique(ids).to_pylist() if v is not None)
    if missing := [sid for sid in wanted if sid not in present]:
        known = sorted(present)
        shown = ", ".join(known[:5]) + (", ..." if len(known) > 5 else "")
        raise ConfigError(
            f"invalid configuration: data.series: {missing[0]!r} is not in the data ({len(known)} series: {shown})"
        )
    values = pa.array(sorted(set(wanted)), pa.string())
    rows = 0
    with io.atomic_path(target) as tmp, pq.ParquetWriter(tmp, source.schema_arrow) as writer:
        for i in range(source.metadata.num_row_groups):
            table = source.read_row_group(i)
            keep = pc.fill_null(pc.is_in(pc.cast(table.column(SERIES_ID), pa.string()), value_set=values), False)
            table = table.filter(keep)
            writer.write_table(table)
            rows += table.num_rows
    return replace(summary, rows=rows, series=len(set(wanted)))


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


def _join_weather_streamed(cfg: DataConfig, target: Path, client: httpx.Client | None) -> None:
    """`_join_weather` row group by row group (rows stay in file order): each location is fetched
    for the whole table's days (the same request as in one go) and kept for the next row groups."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from fluxora.data.connectors import open_meteo
    from fluxora.data.schema import TEMPERATURE, TIMESTAMP
    from fluxora.data.weather import join_temperature

    source = pq.ParquetFile(target)
    groups = range(source.metadata.num_row_groups)
    bounds = [pc.min_max(source.read_row_group(i, columns=[TIMESTAMP]).column(0)).as_py() for i in groups]
    firsts = [b["min"] for b in bounds if b["min"] is not None]
    lasts = [b["max"] for b in bounds if b["max"] is not None]
    if not firsts:
        return
    first, last = pd.Timestamp(min(firsts)).floor("D"), pd.Timestamp(max(lasts)).floor("D")
    fetched: dict[tuple[float, float], pd.DataFrame] = {}
    schema = source.schema_arrow
    if TEMPERATURE not in schema.names:
        schema = schema.append(pa.field(TEMPERATURE, pa.float64()))
    with _client(client) as http:

        def fetch(lat: float, lon: float, _first: pd.Timestamp, _last: pd.Timestamp) -> pd.DataFrame:
            if (lat, lon) not in fetched:
                fetched[(lat, lon)] = open_meteo.historical(http, lat, lon, first.date(), last.date())
            return fetched[(lat, lon)]

        file = io.ParquetAppender(target, lambda df: pa.schema([schema.field(str(c)) for c in df.columns]))
        try:
            for i in groups:
                file.append(join_temperature(source.read_row_group(i).to_pandas(), cfg.weather, fetch))
        except BaseException:
            file.discard()
            raise
        file.commit()


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
