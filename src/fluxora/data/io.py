"""Reading and writing canonical data; writes are atomic so a failure leaves nothing half-written."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


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
