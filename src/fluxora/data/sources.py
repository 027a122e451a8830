"""File ingest: CSV or Parquet, one file, a folder or a glob, long or wide, streamed batch by batch.

Every input row (long) or every (timestamp, series) cell (wide) becomes exactly one row of the
raw canonical table: `series_id`, `timestamp` (UTC, NaT when it could not be placed), `load`,
`temperature`, extra numeric columns, and `ingest_issue` (why a row cannot be used, else null).
The gate decides what happens to rows with issues, so the row accounting starts at the file.
Files are read in blocks and written as Parquet row groups: memory stays bounded by the block
size, not the file size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fluxora.config import DataConfig
from fluxora.data.errors import DataSourceError
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.timezones import AmbiguityTracker, check_zone, localize
from fluxora.errors import first_line

ISSUE = "ingest_issue"
SUFFIXES = (".csv", ".parquet", ".pq", ".csv.gz")
BLOCK_BYTES = 4 << 20  # CSV block per read; arrow reads a few ahead, so memory is bounded by a small multiple of this
_OFFSET = r"(Z|z|[+-]\d{2}:?\d{2})$"
_DELIMITERS = (";", "\t", "|", ",")


@dataclass
class IngestStats:
    files: list[str]
    rows: int = 0
    series: set[str] = field(default_factory=set)


def read_files(cfg: DataConfig, files: list[Path]) -> Iterator[pa.Table]:
    """Yield canonical raw batches from `files` (already confined to the allowed roots)."""
    try:
        check_zone(cfg.timezone)
    except ValueError as exc:
        raise DataSourceError(f"data.timezone: {exc}") from None
    if cfg.layout not in ("long", "wide"):
        raise DataSourceError(f"data.layout must be 'long' or 'wide', got {cfg.layout!r}")
    tracker = AmbiguityTracker()
    extras: list[str] | None = None
    for path in files:
        parser = _FileParser(cfg, path, tracker)
        for batch in _raw_batches(cfg, path):
            table = parser.canonical(batch, extras)
            if extras is None:
                extras = [c for c in table.column_names if c not in _FIXED]
            yield table


def _format(cfg: DataConfig, path: Path) -> str:
    if cfg.format != "auto":
        if cfg.format not in ("csv", "parquet"):
            raise DataSourceError(f"data.format must be auto, csv or parquet, got {cfg.format!r}")
        return cfg.format
    name = path.name.lower()
    return "parquet" if name.endswith((".parquet", ".pq")) else "csv"


def _raw_batches(cfg: DataConfig, path: Path) -> Iterator[pa.RecordBatch]:
    if _format(cfg, path) == "parquet":
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataSourceError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
        yield from reader.iter_batches(batch_size=1 << 20)
        return
    yield from _csv_batches(cfg, path)


def _csv_batches(cfg: DataConfig, path: Path) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pcsv

    if path.stat().st_size == 0:
        raise DataSourceError(f"{path}: the file is empty")
    text_columns = [cfg.columns.timestamp] + ([cfg.columns.series_id] if cfg.layout == "long" else [])
    try:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(delimiter=cfg.delimiter),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in text_columns}, strings_can_be_null=True
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        if "Empty CSV file" in str(exc):
            raise DataSourceError(f"{path}: the file is empty") from None
        raise DataSourceError(f"{path}: cannot parse as CSV ({first_line(exc)})") from None
    _check_columns(cfg, path, reader.schema.names)
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise DataSourceError(f"{path}: malformed CSV ({first_line(exc)})") from None
        yield batch


def _check_columns(cfg: DataConfig, path: Path, names: list[str]) -> None:
    required = [cfg.columns.timestamp] + ([cfg.columns.series_id, cfg.columns.load] if cfg.layout == "long" else [])
    missing = [c for c in required if c not in names]
    if not missing:
        return
    hint = ""
    if len(names) == 1:
        used = next((d for d in _DELIMITERS if d != cfg.delimiter and d in names[0]), None)
        if used:
            hint = f"; the header looks {used!r}-delimited, set data.delimiter={used!r}"
    raise DataSourceError(
        f"{path}: column(s) {missing} not found (columns: {names[:8]}); map them with data.columns.*{hint}"
    )


class _FileParser:
    """Turns one file's raw batches into canonical raw Arrow tables."""

    def __init__(self, cfg: DataConfig, path: Path, tracker: AmbiguityTracker) -> None:
        self.cfg, self.path, self.tracker = cfg, path, tracker
        self.aware: bool | None = None  # whether this file's timestamps carry offsets (fixed by its first batch)

    def canonical(self, batch: pa.RecordBatch, extras: list[str] | None) -> pa.Table:
        cols = self.cfg.columns
        if self.cfg.layout == "long":
            self._require(batch.schema.names, [cols.timestamp, cols.series_id, cols.load])
            table = self._long(batch)
        else:
            self._require(batch.schema.names, [cols.timestamp])
            table = self._wide(batch)
        if extras is not None:  # later batches and files follow the first one's exogenous columns
            for name in extras:
                if name not in table.column_names:
                    table = table.append_column(name, pa.nulls(table.num_rows, pa.float64()))
            table = table.select([SERIES_ID, TIMESTAMP, LOAD, TEMPERATURE, *extras, ISSUE])
        return table

    def _require(self, names: list[str], required: list[str]) -> None:
        if missing := [c for c in required if c not in names]:
            raise DataSourceError(f"{self.path}: column(s) {missing} not found (columns: {names[:8]})")

    def _long(self, batch: pa.RecordBatch) -> pa.Table:
        cols = self.cfg.columns
        sids = pc.fill_null(pc.cast(batch.column(cols.series_id), pa.string()), "")
        ts, issues = self._timestamps(batch.column(cols.timestamp), sids)
        load, load_issues = self._numeric(batch.column(cols.load), cols.load)
        columns: dict[str, Any] = {
            SERIES_ID: sids,
            TIMESTAMP: _utc_array(ts),
            LOAD: load,
            TEMPERATURE: self._temperature(batch),
        }
        mapped = {cols.series_id, cols.timestamp, cols.load, cols.temperature}
        for name in batch.schema.names:
            typ = batch.schema.field(name).type
            if name not in mapped and (_is_numeric(typ) or pa.types.is_null(typ)):  # all-empty: NaN column
                columns[name] = pc.cast(batch.column(name), pa.float64())
        columns[ISSUE] = _issue_array(_first_issue(issues, load_issues), batch.num_rows)
        return pa.table(columns)

    def _wide(self, batch: pa.RecordBatch) -> pa.Table:
        cols = self.cfg.columns
        names = [n for n in batch.schema.names if n not in (cols.timestamp, cols.temperature)]
        if not names:
            raise DataSourceError(f"{self.path}: a wide file needs one load column per series besides the timestamp")
        temperature = self._temperature(batch)
        parts = []
        for name in names:
            sids = pa.array(np.full(batch.num_rows, name, dtype=object), pa.string())
            ts, issues = self._timestamps(batch.column(cols.timestamp), sids)
            load, load_issues = self._numeric(batch.column(name), name)
            issue = _issue_array(_first_issue(issues, load_issues), batch.num_rows)
            parts.append(
                pa.table(
                    {SERIES_ID: sids, TIMESTAMP: _utc_array(ts), LOAD: load, TEMPERATURE: temperature, ISSUE: issue}
                )
            )
        return pa.concat_tables(parts)

    def _temperature(self, batch: pa.RecordBatch) -> pa.Array | pa.ChunkedArray:
        name = self.cfg.columns.temperature
        if name and name in batch.schema.names:
            values, _ = self._numeric(batch.column(name), name)
            return values
        return pa.nulls(batch.num_rows, pa.float64())

    def _numeric(self, column: pa.Array | pa.ChunkedArray, name: str) -> tuple[pa.Array | pa.ChunkedArray, Issues]:
        """Float64 values; text that is not a number becomes NaN with an issue (so the gate can act on it)."""
        if _is_numeric(column.type) or pa.types.is_null(column.type):
            return pc.cast(column, pa.float64()), None
        text = pd.Series(pc.cast(column, pa.string()).to_numpy(zero_copy_only=False), dtype=object)
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64")
        bad = text.notna().to_numpy() & np.isnan(values)
        if not bad.any():
            return pa.array(values), None
        if not (~np.isnan(values)).any():
            raise DataSourceError(
                f"{self.path}: column {name!r} holds no numbers (first value {text[bad].iloc[0]!r}); "
                "check data.columns and data.delimiter"
            )
        issues = pd.Series(None, index=text.index, dtype=object)
        issues[bad] = "non-numeric " + name + ": " + text[bad].astype(str)
        return pa.array(values), issues

    def _timestamps(self, column: pa.Array | pa.ChunkedArray, sids: pa.Array | pa.ChunkedArray) -> tuple[Any, Issues]:
        """UTC timestamps (Arrow or pandas) and per-row issue text (None when every row is fine)."""
        typ = column.type
        if pa.types.is_timestamp(typ):
            if typ.tz is not None:
                return pc.cast(column, pa.timestamp("ns", tz="UTC")), None
            return self._localize(pd.Series(column.to_pandas()), sids, None)
        if not pa.types.is_string(typ) and not pa.types.is_large_string(typ):
            raise DataSourceError(f"{self.path}: column {self.cfg.columns.timestamp!r} is {typ}, not a date-time")
        form = self._form(column)
        if form is not None:
            if self.aware is not None and self.aware != form:
                raise self._mixed()
            self.aware = form
        fast = _arrow_parse(column, aware=bool(self.aware))
        if fast is not None:
            return (fast, None) if self.aware else self._localize(pd.Series(fast.to_pandas()), sids, None)
        text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)
        if self.aware:
            stamps = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        else:
            stamps = pd.to_datetime(text, format="ISO8601", errors="coerce")
        issues = pd.Series(None, index=text.index, dtype=object)
        bad = stamps.isna() & text.notna()
        issues[bad] = "unparseable timestamp: " + text[bad].astype(str)
        issues[text.isna()] = "missing timestamp"
        if self.aware:
            return stamps, issues
        return self._localize(stamps, sids, issues)

    def _form(self, column: pa.Array | pa.ChunkedArray) -> bool | None:
        """Whether this batch's timestamps carry UTC offsets (None: no value tells).

        Only date-times count as a form: a value that parses neither with nor without an offset
        (`n/a`, `2024-13-45`) is an unparseable row for the gate to quarantine, not a second form,
        whichever form the rest of the file uses. Values of both forms that do parse are refused.
        """
        has_offset = pc.fill_null(pc.match_substring_regex(column, _OFFSET), False)
        n_aware = pc.sum(pc.cast(has_offset, pa.int64())).as_py() or 0
        n_present = len(column) - column.null_count
        if n_present == 0:
            return None
        if n_aware in (0, n_present):  # one form throughout (the usual case): nothing to parse here
            return n_aware > 0
        text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)
        offset = has_offset.to_numpy(zero_copy_only=False).astype(bool)
        naive = ~offset & text.notna().to_numpy()
        n_naive_ok = int(pd.to_datetime(text[naive], format="ISO8601", errors="coerce").notna().sum())
        n_aware_ok = int(pd.to_datetime(text[offset], utc=True, format="ISO8601", errors="coerce").notna().sum())
        if n_naive_ok and n_aware_ok:
            raise self._mixed()
        return True if n_aware_ok else False if n_naive_ok else None

    def _mixed(self) -> DataSourceError:
        return DataSourceError(
            f"{self.path}: timestamps mix values with and without a UTC offset; "
            "use one form throughout (naive local times are read in data.timezone)"
        )

    def _localize(self, stamps: pd.Series, sids: pa.Array | pa.ChunkedArray, issues: Issues) -> tuple[Any, Issues]:
        cfg = self.cfg
        try:
            utc, dst = localize(stamps, sids, cfg.timezone, cfg.ambiguous, cfg.nonexistent, self.tracker)
        except ValueError as exc:
            raise DataSourceError(str(exc)) from None
        return utc, _first_issue(issues, dst if dst.notna().any() else None)


Issues = pd.Series | None  # per-row issue text, or None when a batch has none (the common case, kept cheap)


def _first_issue(first: Issues, second: Issues) -> Issues:
    if first is None or second is None:
        return first if second is None else second
    return first.where(first.notna(), second)


def _issue_array(issues: Issues, n: int) -> pa.Array:
    if issues is None:
        return pa.nulls(n, pa.string())
    return pa.array(issues.to_numpy(), type=pa.string(), from_pandas=True)


def _utc_array(stamps: Any) -> pa.Array | pa.ChunkedArray:
    if isinstance(stamps, pd.Series | pd.DatetimeIndex):
        stamps = pa.Array.from_pandas(stamps)
    return pc.cast(stamps, pa.timestamp("ns", tz="UTC"))


def _arrow_parse(column: pa.Array | pa.ChunkedArray, aware: bool) -> pa.Array | pa.ChunkedArray | None:
    """Arrow's C++ ISO-8601 parser (fast path); None when any value needs the forgiving pandas path."""
    if column.null_count:
        return None
    try:
        return pc.cast(column, pa.timestamp("ns", tz="UTC" if aware else None))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


_FIXED = (SERIES_ID, TIMESTAMP, LOAD, TEMPERATURE, ISSUE)


def raw_schema(extras: list[str]) -> pa.Schema:
    """The raw canonical table: canonical columns, float extras, then the ingest issue text."""
    fields = [
        pa.field(SERIES_ID, pa.string()),
        pa.field(TIMESTAMP, pa.timestamp("ns", tz="UTC")),
        pa.field(LOAD, pa.float64()),
        pa.field(TEMPERATURE, pa.float64()),
        *(pa.field(name, pa.float64()) for name in extras),
        pa.field(ISSUE, pa.string()),
    ]
    return pa.schema(fields)


def ingest_to_parquet(cfg: DataConfig, files: list[Path], target: Path) -> IngestStats:
    """Stream `files` into one canonical raw Parquet file at `target` (atomically)."""
    import pyarrow.parquet as pq

    from fluxora.data.io import atomic_path

    stats = IngestStats(files=[str(f) for f in files])
    with atomic_path(target) as tmp:
        writer: pq.ParquetWriter | None = None
        schema: pa.Schema | None = None
        try:
            for table in read_files(cfg, files):
                if writer is None:
                    schema = raw_schema([c for c in table.column_names if c not in _FIXED])
                    writer = pq.ParquetWriter(tmp, schema)
                table = table.cast(schema)
                writer.write_table(table)
                stats.rows += table.num_rows
                stats.series.update(pc.unique(table.column(SERIES_ID)).to_pylist())
        finally:
            if writer is not None:
                writer.close()
        if stats.rows == 0:
            raise DataSourceError(f"no data rows in {', '.join(stats.files)} (only a header?)")
    return stats


def _is_numeric(typ: pa.DataType) -> bool:
    return bool(pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ))
