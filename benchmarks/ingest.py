"""Ingest + validation gate vs a bare pyarrow read + pandas sort, on 1,000 series x 1 year hourly.

Each contender runs in its own child process so that its peak RSS (ru_maxrss) is its own.
Usage: .venv/bin/python benchmarks/ingest.py [--series 1000] [--days 365] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
mode, src, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
import pandas as pd, pyarrow.parquet as pq
from fluxora.config import DataConfig, GateConfig
from fluxora.data.gate import run_gate
from fluxora.data.io import read_parquet
from fluxora.data.sources import ingest_to_parquet
start = time.perf_counter()
if mode == "bare":
    df = pq.read_table(src).to_pandas().sort_values(["series_id", "timestamp"], kind="stable")
    rows = len(df)
else:
    ingest_to_parquet(DataConfig(source="file", format="parquet"), [src], work / "raw.parquet")
    result = run_gate(read_parquet(work / "raw.parquet", categories=["series_id"]), GateConfig())
    rows = result.report["rows_in"]
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "rows": rows}))
"""


def _make_input(path: Path, series: int, days: int) -> int:
    from fluxora.config import DataConfig
    from fluxora.data import io
    from fluxora.data.synthetic import generate

    df = generate(DataConfig(n_series=series, days=days))
    io.write_parquet(df, path)
    return len(df)


def _child(mode: str, src: Path, work: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(src), str(work)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fluxora-bench-") as tmp:
        work = Path(tmp)
        src = work / "input.parquet"
        started = time.perf_counter()
        rows = _make_input(src, args.series, args.days)
        size_mb = src.stat().st_size / 2**20
        print(
            f"input: {args.series} series x {args.days} days = {rows:,} rows, {size_mb:.0f} MB Parquet "
            f"(generated in {time.perf_counter() - started:.1f} s)"
        )
        results: dict[str, list[dict[str, float]]] = {"bare": [], "fluxora": []}
        for _ in range(args.repeat):
            for mode in results:  # interleaved, so load changes on a shared machine hit both
                results[mode].append(_child(mode, src, work))
    med = {m: statistics.median(r["seconds"] for r in runs) for m, runs in results.items()}
    peak = {m: max(r["peak_mb"] for r in runs) for m, runs in results.items()}
    print(f"{'contender':<44} {'time (median)':>14} {'peak RSS':>10}")
    print(f"{'pyarrow read_table + pandas sort':<44} {med['bare']:>12.1f} s {peak['bare']:>7.0f} MB")
    print(f"{'fluxora ingest (Parquet) + validation gate':<44} {med['fluxora']:>12.1f} s {peak['fluxora']:>7.0f} MB")
    print(f"ratio fluxora / bare: {med['fluxora'] / med['bare']:.2f}x  (goal: < 3x, < 60 s, < 4 GB)")


if __name__ == "__main__":
    main()
