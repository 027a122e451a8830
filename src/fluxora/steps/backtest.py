"""Backtest: `backtest.models` and both seasonal naive baselines on rolling origins; a leaderboard."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.fanout import SERIAL, FanOut
from fluxora.paths import Home
from fluxora.steps.base import StepResult, relay_logs
from fluxora.steps.features import panel as stored_panel
from fluxora.steps.train import training_data

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BacktestResult(StepResult):
    step = "backtest"
    leaderboard: str  # the leaderboard JSON's path
    table: str  # the leaderboard as a text table
    run_id: str  # the MLflow run it was logged to


def backtest(
    cfg: FluxoraConfig,
    home: Home,
    output: Path | None = None,
    progress: Callable[[str], None] | None = None,
    fan_out: FanOut = SERIAL,
) -> BacktestResult:
    """Backtest `backtest.models` and both seasonal naive baselines on validated data; write
    the leaderboard JSON, log it with plots and metrics to an MLflow run."""
    from fluxora import registry
    from fluxora.models import backtest as bt
    from fluxora.models.forecasters import BASELINES, installed

    say = progress or _log.info
    panel = stored_panel(home)
    spec = bt.resolve(cfg, panel)
    with relay_logs(say):
        result = bt.run(panel, cfg, [*BASELINES, *installed(cfg.backtest.models)], spec, progress=say, fan_out=fan_out)
    board = bt.leaderboard(
        result, cfg.train.promotion_metric, fan_out=fan_out, series_per_task=cfg.infra.series_per_task
    )
    board = {"data_version": io.file_digest(home.validated_data), "config_hash": cfg.fingerprint()} | board
    target = output or home.leaderboard
    io.atomic_write_text(target, json.dumps(board, indent=2, default=str))
    plots, per_model = _plots(cfg, result, board, home)
    _, inputs = training_data(home)
    run_id = registry.log_backtest(home, cfg, board, plots, target, per_model, inputs)
    return BacktestResult(str(target), bt.render(board), run_id)


def _plots(cfg: FluxoraConfig, result: Any, board: dict[str, Any], home: Home) -> tuple[list[Path], dict[str, Path]]:
    """The leaderboard's plots, and each model's own forecast-vs-actual (for its child run)."""
    if not cfg.backtest.plots:
        return [], {}
    from fluxora.models.plots import backtest_plots, model_plots

    n = cfg.backtest.plot_series
    return backtest_plots(result, board, home.backtest_plots, n), model_plots(
        result, board, home.backtest_plots / "models", n
    )
