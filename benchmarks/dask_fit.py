"""The final XGBoost fit: serial on a sample of origins against xgboost.dask on several shares.

Builds a temporary home (ingest, validation, features for N synthetic series x D days hourly,
every hour an origin), keeps the last `--holdout-days` out of training, then fits the production
model (`steps.train._fit_final`, what `fluxora run` registers) serially on `--serial-origins`
origins and on a local Dask cluster (`--workers` processes, one thread each, as `infra=dask`)
with `train.dask_max_origins` set to each of `--shares` (0: every origin). Each fit forecasts the
held-out days (origins every 6 hours, day ahead); prints the fit's wall time and MAE, and both as
ratios to the serial fit's (medians over `--repeat` fits): the accuracy cost, or gain, of each share.

    nice .venv/bin/python -u benchmarks/dask_fit.py --series 50 --days 365 --shares 50000 200000 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


class ClientFanOut:
    """What `flows.fanout` hands the train step with infra=dask, reduced to its client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def map(self, fn: Any, items: Any) -> Any:
        return iter(self.client.gather(self.client.map(fn, list(items), pure=False)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--holdout-days", type=int, default=14)
    parser.add_argument("--serial-origins", type=int, default=50_000, help="train.max_origins of the serial fit")
    parser.add_argument("--shares", type=int, nargs="+", default=[50_000, 200_000, 0], help="train.dask_max_origins")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="fluxora-bench-daskfit-"))
    os.environ["FLUXORA_HOME"] = str(scratch / "home")
    from distributed import Client, LocalCluster

    from fluxora import steps
    from fluxora.config import compose
    from fluxora.paths import Home
    from fluxora.runtime import prepare
    from fluxora.steps.features import panel as stored_panel
    from fluxora.steps.train import _fit_final

    base = [f"data.n_series={args.series}", f"data.days={args.days}", "model=xgboost", "train.origin_stride_hours=1"]
    base += args.overrides
    cfg = compose([*base, f"train.max_origins={args.serial_origins}"])
    print(f"load average at start: {_load()}", flush=True)
    print(f"{args.series} series x {args.days} days hourly; overrides: {' '.join(base)}", flush=True)
    home = prepare(Home.from_env())
    for step in (steps.ingest, steps.validate, steps.features):
        step(cfg, home)
    panel = stored_panel(home)
    cut = min(s.end for s in panel.series.values()) - np.timedelta64(args.holdout_days * 24, "h")
    seen = panel.until(cut)  # training origins have every target at or before the cut
    later = cut + np.arange(0, (args.holdout_days - 1) * 24, 6) * np.timedelta64(1, "h")
    lh, lt = cfg.features.load_history_hours, cfg.features.temp_history_hours  # hourly data: steps = hours
    test = panel.batch({sid: later for sid in panel.series}, 24, lh, lt)

    def fit(c: Any, fan: Any = None) -> tuple[float, float]:
        times, maes = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            model = _fit_final(c, home, seen, "xgboost", *([fan] if fan else []))
            times.append(time.perf_counter() - started)
            maes.append(float(np.nanmean(np.abs(model.predict(test).point - test.y))))
        return statistics.median(times), statistics.median(maes)

    rows = [("serial", args.serial_origins, *fit(cfg))]
    print(f"  serial, {args.serial_origins} origins: {rows[-1][2]:.1f} s, MAE {rows[-1][3]:.4f}", flush=True)
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, Client(cluster, set_as_default=False) as client:
        for share in args.shares:
            c = compose([*base, f"train.max_origins={args.serial_origins}", f"train.dask_max_origins={share}"])
            rows.append(("xgboost.dask", share, *fit(c, ClientFanOut(client))))
            print(f"  xgboost.dask, {share or 'all'} origins: {rows[-1][2]:.1f} s, MAE {rows[-1][3]:.4f}", flush=True)

    total = sum(len(v) for v in seen.training_origins(24, 1, lh, lt).values())
    print(f"\ntraining origins before the cut: {total}; held-out: {len(test)} origins x 24 h")
    print(f"{'fit':<14}{'origins':>10}{'wall s':>9}{'MAE':>9}{'time ÷ serial':>15}{'MAE ÷ serial':>14}")
    for name, n, seconds, mae in rows:
        shown = n if n and n < total else total
        print(f"{name:<14}{shown:>10}{seconds:>9.1f}{mae:>9.4f}{seconds / rows[0][2]:>15.2f}{mae / rows[0][3]:>14.3f}")
    print(f"load average at end: {_load()}")
    print(f"(scratch FLUXORA_HOME: {scratch / 'home'}; delete it when done)")
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
