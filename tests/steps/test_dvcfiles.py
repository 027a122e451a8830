"""What DVC reads from a training: plot data and per-model backtest metrics, written by the train
step, and restored from the MLflow run when a training finds its version already registered
(DVC deletes a stage's outputs before it runs the stage)."""

from __future__ import annotations

import csv
import json
import shutil

from fluxora.config import FluxoraConfig
from fluxora.paths import Home


def _files(home: Home) -> dict[str, bytes]:
    return {
        str(p.relative_to(home.root)): p.read_bytes()
        for d in (home.plots_dir, home.backtest_metrics)
        for p in sorted(d.iterdir())
    }


def test_training_writes_dvc_files_and_restores_them_when_nothing_is_trained(
    trained_home: Home, tiny_cfg: FluxoraConfig
) -> None:
    from fluxora import steps
    from fluxora.steps.dvcfiles import ERROR_COLUMNS, FORECAST_COLUMNS

    home = trained_home
    before = _files(home)
    board = {
        name.rsplit("/", 1)[1].removesuffix(".json"): json.loads(b) for name, b in before.items() if "backtest/" in name
    }
    assert {"ridge", "xgboost", "seasonal_naive_daily", "seasonal_naive_weekly"} <= set(board)  # model=auto
    winner = min(("ridge", "xgboost"), key=lambda m: board[m]["mae"])  # what the default registers
    assert board[winner]["mae"] == json.loads(home.train_metrics.read_text())["mae"]

    with (home.plots_dir / "error_by_horizon.csv").open() as f:
        errors = list(csv.DictReader(f))
    assert list(errors[0]) == ERROR_COLUMNS and len(errors) == tiny_cfg.train.horizon
    assert [int(r["step"]) for r in errors] == list(range(1, tiny_cfg.train.horizon + 1))
    with (home.plots_dir / "forecast_vs_actual.csv").open() as f:
        forecast = list(csv.DictReader(f))
    assert list(forecast[0]) == FORECAST_COLUMNS and len({r["series_id"] for r in forecast}) == 1
    stamps = [r["timestamp"] for r in forecast]
    assert stamps == sorted(set(stamps))  # one row per hour, in time order
    assert all(float(r["lower"]) <= float(r["upper"]) for r in forecast)

    shutil.rmtree(home.plots_dir)  # what `dvc repro` does to a stage's outputs before it runs it
    shutil.rmtree(home.backtest_metrics)
    again = steps.train(tiny_cfg, home)
    assert again.leaderboard is None  # already registered: nothing trained
    assert _files(home) == before
