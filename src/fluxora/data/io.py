"""Reading and writing canonical data; writes are atomic so a failure leaves nothing half-written."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; move it into place only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(target: Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return target


def write_parquet(df: pd.DataFrame, target: Path) -> Path:
    """Write a DataFrame to Parquet atomically."""
    return atomic_write(target, lambda tmp: df.to_parquet(tmp, index=False))


def atomic_write(target: Path, writer: Callable[[Path], object]) -> Path:
    with atomic_path(target) as tmp:
        writer(tmp)
    return target


def read_parquet(path: Path, categories: Sequence[str] = ()) -> pd.DataFrame:
    """Read a Parquet file; `categories` are string columns read as pandas categoricals (cheap for ids)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the ingest step first (`fluxora run`)")
    if categories:
        import pyarrow.parquet as pq

        return pq.read_table(path, read_dictionary=list(categories)).to_pandas()
    return pd.read_parquet(path)


def file_digest(path: Path) -> str:
    """MD5 of a file, the same digest DVC records for it (its data version)."""
    h = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ParquetAppender:
    """One Parquet file written table by table at a temporary path next to `target`.

    `append` writes a frame (its own row groups) so memory holds one frame; `commit` closes the
    file and moves it into place, `discard` deletes it: a failure leaves nothing half-written.
    `schema` fixes the column types (else the first frame's); a frame that is empty is not
    written but the first one is kept, to write an empty file with its columns if nothing else came.
    """

    def __init__(self, target: Path, schema: Callable[[pd.DataFrame], pa.Schema] | None = None) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        self.target, self.tmp, self.schema = target, Path(tmp), schema
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._empty: pd.DataFrame | None = None

    def append(self, df: pd.DataFrame) -> None:
        if df.empty:
            if self._empty is None:
                self._empty = df
            return
        self._write(df)

    def _write(self, df: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = self._writer.schema if self._writer is not None else self.schema(df) if self.schema else None
        table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, table.schema)
        self._writer.write_table(table)
        self.rows += len(df)

    def commit(self) -> Path:
        if self._writer is None and self._empty is not None:
            self._write(self._empty)
        if self._writer is None:
            raise ValueError(f"nothing to write to {self.target}")
        self._writer.close()
        os.replace(self.tmp, self.target)
        return self.target

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)


def column_range(path: Path, column: str) -> tuple[Any, Any] | None:
    """The smallest and largest non-null value of a Parquet column (None: no value), from the row
    groups' statistics where they were written, else by reading that column a row group at a time."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the ingest step first (`fluxora run`)")
    file = pq.ParquetFile(path)
    index = file.schema_arrow.get_field_index(column)
    lows, highs = [], []
    for i in range(file.metadata.num_row_groups):
        group = file.metadata.row_group(i)
        stats = group.column(index).statistics if index >= 0 else None
        if group.num_rows == 0:
            continue
        if stats is not None and stats.has_min_max and stats.null_count < group.num_rows:
            lows.append(stats.min)
            highs.append(stats.max)
            continue
        values = file.read_row_group(i, columns=[column]).column(0)
        low_high = pc.min_max(values)
        if low_high["min"].is_valid:
            lows.append(low_high["min"].as_py())
            highs.append(low_high["max"].as_py())
    return (min(lows), max(highs)) if lows else None


class SeriesBatches:
    """A Parquet table (rows in any order) read back `size` whole series at a time.

    Iterating yields (frame, input row numbers) per batch, series in sorted order, each batch's
    rows in file order (series ids as categoricals). First the rows without a usable series id
    (null or blank), on their own. One pass over the id column finds which row groups hold which
    series; a batch then reads only the row groups that hold its series, one at a time, so memory
    holds a batch plus a row group. `size` <= 0: the whole table as one batch. `columns` reads
    only those the file has (the series column is always read).
    """

    def __init__(
        self, path: Path, size: int, series_column: str = "series_id", columns: Sequence[str] | None = None
    ) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; run the ingest step first (`fluxora run`)")
        self.path, self.size, self.column = path, size, series_column
        self.file = pq.ParquetFile(path, read_dictionary=[series_column])
        present = set(self.file.schema_arrow.names)
        wanted = None if columns is None else dict.fromkeys([series_column, *columns])
        self.columns = None if wanted is None else [c for c in wanted if c in present]
        meta = self.file.metadata
        self.rows = meta.num_rows
        self.offsets = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
        self.has_ids = series_column in self.file.schema_arrow.names
        self.groups: list[list[str]] = []  # the ids (as text) in each row group
        nulls: list[bool] = []
        if self.has_ids:
            for i in range(meta.num_row_groups):
                ids = self.file.read_row_group(i, columns=[series_column]).column(0)
                ids = pc.cast(ids, pa.string())
                self.groups.append([v for v in pc.unique(ids).to_pylist() if v is not None])
                nulls.append(ids.null_count > 0)
        names = sorted({name for group in self.groups for name in group})
        self.series = len(names)
        self.blank = [n for n in names if not n.strip()]
        named = [n for n in names if n.strip()]
        step = size if size > 0 else max(len(named), 1)
        self.batches = [named[i : i + step] for i in range(0, len(named), step)]
        if self.blank or any(nulls):
            self.batches.insert(0, self.blank)
        self._nulls = nulls
        self._cached: tuple[int, pa.Table] | None = None  # the last row group read (batches share some)

    def __len__(self) -> int:
        return max(len(self.batches), 1)

    def __iter__(self) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        if self.size <= 0 or not self.has_ids or len(self.batches) <= 1:
            table = self.file.read(columns=self.columns)
            yield table.to_pandas(), np.arange(self.rows, dtype=np.int64)
            return
        for number in range(len(self.batches)):
            batch = self._read(number)
            yield batch
            del batch  # before the next batch is read: memory holds one
        self._cached = None

    def _read(self, number: int) -> tuple[pd.DataFrame, np.ndarray]:
        import pyarrow as pa
        import pyarrow.compute as pc

        names = self.batches[number]
        wanted, with_nulls = set(names), number == 0 and bool(self.blank or any(self._nulls))
        values = pa.array(names, pa.string())
        parts, rows = [], []
        for i, group in enumerate(self.groups):
            if not (wanted.intersection(group) or (with_nulls and self._nulls[i])):
                continue
            if self._cached is None or self._cached[0] != i:
                self._cached = None
                self._cached = (i, self.file.read_row_group(i, columns=self.columns))
            table = self._cached[1]
            ids = pc.cast(table.column(self.column), pa.string())
            mask = pc.is_in(ids, value_set=values)
            if with_nulls:
                mask = pc.or_(pc.fill_null(mask, False), pc.is_null(ids))
            mask = pc.fill_null(mask, False)
            parts.append(table.filter(mask))
            rows.append(np.flatnonzero(mask.to_numpy(zero_copy_only=False)) + self.offsets[i])
        frame = pa.concat_tables(parts).to_pandas()
        del parts
        ids = frame[self.column]
        if isinstance(ids.dtype, pd.CategoricalDtype):
            frame[self.column] = ids.cat.remove_unused_categories()
        return frame, np.concatenate(rows).astype(np.int64)
