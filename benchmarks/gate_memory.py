"""Peak memory of ingest + the validation gate, in series batches (`data.batch_series`) and in one go.

For each series count, each mode runs in a fresh process (synthetic source, hourly, `--days`
days, the steps `fluxora run` calls: `steps.ingest` then `steps.validate`) and reports that
process's peak RSS (ru_maxrss), its peak after a warm-up run on one series (the baseline every
run pays: imports, the calendar) and the wall
time of both steps. Printed per run: peak, peak above the baseline per series, and the ratio of
one-go to batched peak, so whether peak memory stays flat as series grow is visible.

    nice .venv/bin/python -u benchmarks/gate_memory.py                       # 250, 1000, 3000 series
    nice .venv/bin/python -u benchmarks/gate_memory.py --series 100 --days 30  # smoke, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

MIB = 1024**2

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from fluxora import steps
from fluxora.config import compose
from fluxora.paths import Home

n, days, size, root = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg = compose([f"data.n_series={n}", f"data.days={days}", f"data.batch_series={size}", "data.outliers=2",
               "data.missing_stretches=1"])
warm = compose(["data.n_series=1", f"data.days={days}", f"data.batch_series={size}"])
warm_home = Home(Path(root) / "warm").ensure()
steps.ingest(warm, warm_home)
steps.validate(warm, warm_home)  # imports and one series: what every run pays
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
home = Home(Path(root) / "run").ensure()
t0 = time.perf_counter()
ingest = steps.ingest(cfg, home)
t1 = time.perf_counter()
validate = steps.validate(cfg, home)
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "peak": peak, "ingest_s": t1 - t0, "validate_s": t2 - t1, "rows": ingest.rows,
                  "written": validate.rows, "quarantined": validate.rows_quarantined}))
"""


def run(n: int, days: int, size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="fluxora-gate-memory-") as root:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), str(days), str(size), root],
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, nargs="+", default=[250, 1000, 3000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--batch", type=int, default=200, help="data.batch_series of the batched runs")
    args = parser.parse_args()
    print(f"ingest + validate, synthetic hourly x {args.days} days; batched = data.batch_series={args.batch}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    header = f"{'series':>7} {'mode':>9} {'rows':>11} {'peak MiB':>9} {'warm MiB':>9} {'kB/series':>10}"
    print(header + f" {'ingest s':>9} {'gate s':>7} {'one-go/batched peak':>20}")
    for n in args.series:
        results = {}
        for mode, size in (("batched", args.batch), ("one go", 0)):
            r = results[mode] = run(n, args.days, size)
            per_series = (r["peak"] - r["base"]) / n / 1024
            ratio = f"{results['one go']['peak'] / results['batched']['peak']:.2f}" if mode == "one go" else ""
            print(
                f"{n:>7} {mode:>9} {int(r['rows']):>11,} {r['peak'] / MIB:>9.0f} {r['base'] / MIB:>9.0f}"
                f" {per_series:>10.1f} {r['ingest_s']:>9.1f} {r['validate_s']:>7.1f} {ratio:>20}",
                flush=True,
            )
        same = results["batched"]["written"] == results["one go"]["written"]
        same &= results["batched"]["quarantined"] == results["one go"]["quarantined"]
        print(f"{'':>7} same rows written and quarantined: {same}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
