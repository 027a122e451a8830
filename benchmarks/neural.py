"""The neural forecaster next to ridge and XGBoost: MAPE / the better seasonal naive's MAPE, 80 %
coverage and training time, on the synthetic 100-series year and the real files in
/work/shared/data (see its README).

Each data set goes through the validation gate and one rolling-origin backtest (refit once,
day-ahead, ex-post weather, 28 daily windows; 8 on the synthetic year as in benchmarks/backtest.py),
every model on the same windows. Goals (issue 18): neural beats seasonal naive on every file
(ratio < 1), is within 5 % of the best candidate on the 100-series data, and trains on
100 series x 1 year in at most 5 minutes here.

    nice .venv/bin/python benchmarks/neural.py                 # everything (~15 min on 2 cores)
    .venv/bin/python benchmarks/neural.py --only uk_meters     # one data set
    .venv/bin/python benchmarks/neural.py --models neural ridge -- model.neural_units=32
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REAL = Path("/work/shared/data")
SYNTHETIC = [
    "data.n_series=100",
    "data.days=365",
    "backtest.windows=8",
    "train.origin_stride_hours=12",  # as benchmarks/backtest.py: 1.7M design rows
]
# file -> overrides: its calendar (the README's zones and countries)
FILES = {
    "uk_meters": ["data.path=uk_meters.csv.gz", "features.timezone=Europe/London", "features.holiday_country=GB"],
    "uci_household": [
        "data.path=uci_household.csv.gz",
        "data.timezone=Europe/Paris",
        "features.timezone=Europe/Paris",
        "features.holiday_country=FR",
    ],
    "simbench": ["data.path=simbench_profiles.parquet", "features.holiday_country=DE"],
}
COMMON = ["backtest.horizon=24", "backtest.refit=once", "backtest.weather=ex_post", "backtest.plots=false"]


def load(name: str, cfg: Any) -> Any:
    import pandas as pd

    from fluxora.data.gate import run_gate
    from fluxora.data.ingest import ingest
    from fluxora.data.synthetic import generate

    if name == "synthetic":
        raw = generate(cfg.data)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "raw.parquet"
            ingest(cfg.data, target, REAL)
            raw = pd.read_parquet(target)
    return run_gate(raw, cfg.data.gate, cfg.data.freq, cfg.data.resolution).data


def bench(name: str, models: list[str], extra: list[str]) -> dict[str, Any]:
    from fluxora.config import compose
    from fluxora.models import backtest as bt
    from fluxora.models.forecasters import BASELINES
    from fluxora.models.panel import Panel

    overrides = SYNTHETIC if name == "synthetic" else ["data.source=file", "data.roots=[.]", *FILES[name]]
    cfg = compose([*COMMON, *overrides, *extra])
    panel = Panel.from_frame(load(name, cfg))
    spec = bt.resolve(cfg, panel)
    result = bt.run(panel, cfg, [*BASELINES, *models], spec, progress=lambda m: print(f"  {m}", flush=True))
    board = bt.leaderboard(result, "mape")
    by = {e["model"]: e["overall"] for e in board["models"]}
    naive = min(by[b]["mape"] for b in BASELINES)
    row: dict[str, Any] = {"data": name, "series": len(panel.series), "windows": len(spec.origins), "naive": naive}
    for m in models:
        row[m] = by[m]["mape"] / naive
        row[f"{m}_cov"] = by[m].get("coverage_80", float("nan"))
        row[f"{m}_fit"] = result.runs[m].fit_seconds
    return row


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["synthetic", *FILES], help="data sets (synthetic, files)")
    parser.add_argument("--models", nargs="*", default=["ridge", "xgboost", "neural"])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every data set")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="  %(message)s")  # the neural epochs
    for noisy in ("fluxora.data", "py.warnings"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    rows = []
    for name in args.only:
        started = time.perf_counter()
        print(f"{name}:", flush=True)
        rows.append(bench(name, args.models, args.overrides))
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    head = "| data | series | windows | naive MAPE % |" + "".join(f" {m} |" for m in args.models)
    head += "".join(f" {m} cov80 |" for m in args.models) + "".join(f" {m} fit s |" for m in args.models)
    print("\nMAPE / better seasonal naive's MAPE (< 1 beats it), 80 % interval coverage, fit seconds")
    print(head)
    print("|" + "---|" * (4 + 3 * len(args.models)))
    for r in rows:
        line = f"| {r['data']} | {r['series']} | {r['windows']} | {r['naive']:.2f} |"
        line += "".join(f" {r[m]:.3f} |" for m in args.models)
        line += "".join(f" {r[f'{m}_cov']:.1%} |" for m in args.models)
        line += "".join(f" {r[f'{m}_fit']:.0f} |" for m in args.models)
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
