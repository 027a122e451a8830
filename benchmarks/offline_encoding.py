"""The offline feature tables' parquet encoding: pyarrow's default (snappy, every column
dictionary-encoded) against `fluxora.features.store.writer_options` (zstd level 1, dictionaries only
for columns that are not floats), side by side on the same tables.

Builds the feature tables of N synthetic series x D days hourly in memory (`feature_batches`,
what the features step writes), then per view writes and reads each encoding `--repeat` times
in alternation and prints the medians, the bytes on disk and the ratios (default / fluxora).

    .venv/bin/python benchmarks/offline_encoding.py                       # 50 series x 1 year
    .venv/bin/python benchmarks/offline_encoding.py --series 200 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3, help="writes and reads per encoding (medians)")
    args = parser.parse_args()
    if args.series < 1 or args.days < 9 or args.repeat < 1:
        parser.error("--series and --repeat must be positive and --days at least 9 (a week of history)")

    from fluxora.config import DataConfig, FeaturesConfig
    from fluxora.data.synthetic import generate
    from fluxora.features.build import feature_batches
    from fluxora.features.store import ROW_GROUP_ROWS, writer_options

    data = generate(DataConfig(n_series=args.series, days=args.days, start="2024-01-01"))
    batches = list(feature_batches(data, FeaturesConfig()))
    tables = {view: pa.concat_tables([b[view] for b in batches if view in b]) for view in batches[0]}
    print(f"{args.series} series x {args.days} days hourly; medians of {args.repeat}")
    print(f"{'view':<14}{'rows':>11}{'encoding':>10}{'write s':>9}{'read s':>8}{'MB':>9}")
    totals = {"default": [0.0, 0.0, 0], "fluxora": [0.0, 0.0, 0]}
    with tempfile.TemporaryDirectory(prefix="fluxora-bench-encoding-") as tmp:
        for view, table in tables.items():
            encodings: dict[str, dict[str, Any]] = {"default": {}, "fluxora": writer_options(table.schema)}
            times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in encodings}
            sizes: dict[str, int] = {}
            for _ in range(args.repeat):  # alternate, so drift in the machine's load hits both
                for name, options in encodings.items():
                    path = Path(tmp) / f"{view}-{name}.parquet"
                    started = time.perf_counter()
                    pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS, **options)
                    times[name][0].append(time.perf_counter() - started)
                    started = time.perf_counter()
                    back = pq.read_table(path)
                    times[name][1].append(time.perf_counter() - started)
                    if not back.equals(table):
                        raise SystemExit(f"{view}: the {name} encoding did not read back the same table")
                    sizes[name] = path.stat().st_size
            for name in encodings:
                write, read = statistics.median(times[name][0]), statistics.median(times[name][1])
                totals[name][0] += write
                totals[name][1] += read
                totals[name][2] += sizes[name]
                print(f"{view:<14}{table.num_rows:>11,}{name:>10}{write:>9.2f}{read:>8.2f}{sizes[name] / 1e6:>9.1f}")
    d, f = totals["default"], totals["fluxora"]
    print(
        f"all views: write {d[0]:.2f} s vs {f[0]:.2f} s (x{d[0] / f[0]:.2f}), read {d[1]:.2f} s vs {f[1]:.2f} s "
        f"(x{d[1] / f[1]:.2f}), {d[2] / 1e6:.1f} MB vs {f[2] / 1e6:.1f} MB (x{d[2] / f[2]:.2f} smaller)"
    )
    rows = tables["origin_state"].num_rows if "origin_state" in tables else 0
    if rows:
        print(f"bytes per series-hour, all views: {d[2] / rows:.0f} default, {f[2] / rows:.0f} fluxora")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
