"""Does a tuned XGBoost beat the default XGBoost and ridge on real load (issue 13 item 4)?

For each real file (the first case of each in `benchmarks/real_data.py`: UK meters with
persistence weather, the UCI household, SimBench at native 15 minutes), in a fresh
FLUXORA_HOME:

1. `fluxora tune`'s step (`fluxora.steps.tune`, after ingest and validate, as the command runs
   it) searches XGBoost's settings for `--trials` trials on `tune.windows` day-ahead origins that
   end where the gate's backtest windows begin;
2. ridge, the default XGBoost and the tuned XGBoost (the printed overrides) are backtested on the
   gate's windows (`backtest.windows`, the same windows and cohorts as `real_data.py`), which no
   trial saw.

Printed per file: MAE / the better seasonal naive's MAE for each model, the tuning study's best
and configured values on its own windows, and wall times. `train.max_origins` bounds every
training set (default 10000) so a trial stays affordable on a shared 2-core machine.

    nice .venv/bin/python -u benchmarks/tuning.py [override ...] [--trials 12] [--files uk uci simbench]

(overrides first: `--files` takes every word after it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # real_data.py, next to this file
import real_data


def gate_scores(case: Any, overrides: list[str], models: list[str]) -> dict[str, float]:
    """Each model's pooled MAE on the gate's windows (cohorts as real_data.py) over the better naive's."""
    from fluxora.config import compose
    from fluxora.models import backtest as bt
    from fluxora.models import metrics
    from fluxora.models.forecasters import BASELINES

    cfg = compose([*case.overrides, *overrides])
    panel = real_data.panel_for(cfg, real_data.load(case, cfg))
    pooled: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for sub in real_data.cohorts(panel, cfg.backtest.windows * cfg.backtest.step_hours):
        spec = bt.resolve(cfg, sub, weather=cfg.train.weather, horizon=cfg.train.horizon)
        result = bt.run(sub, cfg, [*BASELINES, *models], spec)
        for name, run in result.runs.items():
            ys, points = pooled.setdefault(name, ([], []))
            ys.append(result.evaluation.y)
            points.append(run.point)
    mae = {name: metrics.mae(np.concatenate(ys), np.concatenate(ps)) for name, (ys, ps) in pooled.items()}
    naive = min(mae[b] for b in BASELINES)
    return {name: mae[name] / naive for name in models}


def tune_file(case: Any, overrides: list[str], trials: int) -> Any:
    """`fluxora tune`'s steps on the file in a fresh home; the result."""
    from fluxora import steps
    from fluxora.config import compose
    from fluxora.paths import Home
    from fluxora.runtime import prepare

    data = [f"data.path={real_data.REAL / case.file}", f"data.roots=[{real_data.REAL}]"]
    cfg = compose([*case.overrides, *data, *overrides, f"tune.trials={trials}"])
    home = prepare(Home(Path(tempfile.mkdtemp(prefix="fluxora-tune-bench-"))), cfg)
    for step in (steps.ingest, steps.validate):
        step(cfg, home)
    return steps.tune(cfg, home, progress=lambda m: print(f"    {m}", flush=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--files", nargs="+", default=["uk", "uci", "simbench"], choices=["uk", "uci", "simbench"])
    parser.add_argument("--max-origins", type=int, default=10000)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every file, e.g. tune.windows=7")
    args = parser.parse_args()
    common = [
        "backtest.windows=28",
        "backtest.horizon=24h",
        "backtest.step_hours=24",
        "train.horizon=24h",
        f"train.max_origins={args.max_origins}",
        *args.overrides,
    ]
    rows = []
    for name in args.files:
        case = real_data.CASES[name][0]
        print(f"\n{case.name}: tuning ({args.trials} trials)", flush=True)
        started = time.perf_counter()
        result = tune_file(case, common, args.trials)
        t_tune = time.perf_counter() - started
        print(f"    best {result.metric} {result.value:.4g} vs configured {result.configured_value:.4g}", flush=True)
        started = time.perf_counter()
        default = gate_scores(case, common, ["ridge", "xgboost"])
        tuned = gate_scores(case, [*common, *result.overrides], ["xgboost"])["xgboost"]
        t_gate = time.perf_counter() - started
        rows.append((case.name, default["ridge"], default["xgboost"], tuned, result, t_tune, t_gate))
        print(
            f"    gate windows, MAE / better naive: ridge {default['ridge']:.3f}, xgboost default "
            f"{default['xgboost']:.3f}, tuned {tuned:.3f} ({t_tune:.0f} s tuning, {t_gate:.0f} s gate backtests)",
            flush=True,
        )
    print(f"\n{'file':<40}{'ridge':>8}{'xgb':>8}{'tuned':>8}{'tuned/xgb':>10}{'tuned/ridge':>12}  overrides")
    for name, ridge, xgb, tuned, result, *_ in rows:
        ratios = f"{ridge:8.3f}{xgb:8.3f}{tuned:8.3f}{tuned / xgb:10.3f}{tuned / ridge:12.3f}"
        print(f"{name:<40}{ratios}  {' '.join(result.overrides)}")


if __name__ == "__main__":
    main()
