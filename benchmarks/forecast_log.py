"""The forecast log's write-ahead file: what it costs, with and without it, on SQLite.

Two figures per mode, medians of `--repeat` runs:
- submit: rows/s through `ForecastLogWriter.submit` (the request path: one call per request of
  `--per-request` rows, each row as the service logs it, pre-encoded JSON values included);
- end to end: rows/s from the first submit until `close()` has committed every row (one
  commit: the database insert dominates, so this is close to the sustainable write rate).

Usage: .venv/bin/python benchmarks/forecast_log.py [--rows 20000] [--per-request 1] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fluxora import servicedb as db
from fluxora.api.forecast_log import ForecastLogWriter
from fluxora.servicedb.models import EncodedJSON


def _rows(n: int) -> list[dict[str, object]]:
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    values = EncodedJSON(json.dumps([100.0 + k / 7 for k in range(24)]))
    quantiles = EncodedJSON(json.dumps({"0.1": [90.0 + k / 7 for k in range(24)], "0.9": [110.0] * 24}))
    return [
        {
            "served_at": datetime.now(UTC), "series_id": f"series_{i % 100:03d}", "origin": t0 + timedelta(hours=i),
            "horizon": 24, "values": values, "quantiles": quantiles, "model_version": "3", "consumer": "key:1",
            "endpoint": "get_forecast", "request_id": f"req-{i}", "latency_ms": 1.5,
        }
        for i in range(n)
    ]  # fmt: skip


def _run(rows: list[dict[str, object]], per_request: int, wal: bool) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine(f"sqlite:///{Path(tmp) / 'api.db'}")
        db.migrate(engine)
        # No flush while rows arrive: `submit` is timed alone (in the service the writer thread
        # runs meanwhile, alike in both modes); close() then commits everything.
        writer = ForecastLogWriter(engine, flush_s=3600, wal_dir=Path(tmp) / "wal" if wal else None)
        writer.start()
        batches = [rows[i : i + per_request] for i in range(0, len(rows), per_request)]
        started = time.perf_counter()
        for batch in batches:
            writer.submit(batch)
        submitted = time.perf_counter()
        writer.close()
        done = time.perf_counter()
        assert writer.written == len(rows), (writer.written, writer.dropped)
        engine.dispose()
    return len(rows) / (submitted - started), len(rows) / (done - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--per-request", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = _rows(args.rows)
    results: dict[str, list[tuple[float, float]]] = {"memory": [], "wal": []}
    for _ in range(args.repeat):
        for mode in results:  # interleaved, so drift in machine load hits both alike
            results[mode].append(_run(rows, args.per_request, mode == "wal"))
    median = {
        m: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for m, rs in results.items()
    }
    print(f"{args.rows} rows, {args.per_request} per submit, median of {args.repeat} runs (SQLite)")
    print(f"{'':<8}{'submit rows/s':>16}{'end-to-end rows/s':>20}")
    for mode, (submit, total) in median.items():
        print(f"{mode:<8}{submit:>16,.0f}{total:>20,.0f}")
    ratio = (median["wal"][0] / median["memory"][0], median["wal"][1] / median["memory"][1])
    print(f"{'wal/mem':<8}{ratio[0]:>16.2f}{ratio[1]:>20.2f}")
    per_row_us = 1e6 / median["wal"][0] - 1e6 / median["memory"][0]
    print(f"the write-ahead file adds {per_row_us:.1f} us per row on the request path")


if __name__ == "__main__":
    main()
