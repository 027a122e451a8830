"""Backtest at scale: 100 series x 1 year hourly, 8 day-ahead windows, XGBoost and seasonal naive.

Prints the wall time of each phase and the peak RSS of the process; goal here: under 5 minutes
and 4 GB. Extra Hydra overrides may follow, e.g.
`.venv/bin/python benchmarks/backtest.py train.origin_stride_hours=6 model.n_jobs=2`.
"""

from __future__ import annotations

import resource
import sys
import time

DEFAULTS = [
    "data.n_series=100",
    "data.days=365",
    "backtest.windows=8",
    "backtest.horizon=24",
    "backtest.refit=once",
    "backtest.weather=ex_post",
    "backtest.models=[xgboost]",
    # One training origin every 12 h per series: 100 x ~350 days x 2 x 24 steps = 1.7M design rows.
    "train.origin_stride_hours=12",
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str]) -> int:
    from fluxora.config import compose
    from fluxora.data.gate import run_gate
    from fluxora.data.synthetic import generate
    from fluxora.models import backtest as bt
    from fluxora.models.forecasters import BASELINES
    from fluxora.models.panel import Panel

    cfg = compose([*DEFAULTS, *argv])
    started = time.perf_counter()
    data = run_gate(generate(cfg.data), cfg.data.gate, cfg.data.freq, cfg.data.resolution).data
    panel = Panel.from_frame(data)
    t_data = time.perf_counter() - started
    spec = bt.resolve(cfg, panel)
    result = bt.run(panel, cfg, [*BASELINES, *cfg.backtest.models], spec, progress=lambda m: print(m, flush=True))
    board = bt.leaderboard(result)
    wall = time.perf_counter() - started
    print(bt.render(board))
    print(
        f"\n{cfg.data.n_series} series x {cfg.data.days} days hourly, {len(spec.origins)} windows, "
        f"horizon {spec.horizon} h, training stride {cfg.train.origin_stride_hours} h"
    )
    print(f"data generation + validation {t_data:.1f} s")
    print(f"wall time {wall:.1f} s (goal < 300 s)   peak RSS {peak_rss_mb():.0f} MB (goal < 4096 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
