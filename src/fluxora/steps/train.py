"""Train: backtest the candidates against seasonal naive and the champion, refit the winner on the
training set read through Feast, register it and let the promotion gate decide."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fluxora import registry
from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.fanout import SERIAL, FanOut
from fluxora.faults import failpoint
from fluxora.paths import Home
from fluxora.registry import RegisteredModel
from fluxora.runtime import release_memory
from fluxora.steps import dvcfiles
from fluxora.steps.base import StepResult, relay_logs
from fluxora.steps.features import panel as stored_panel

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult(StepResult):
    step = "train"
    metrics: dict[str, float]  # the winner's backtest metrics, baselines', champion's and candidates'
    model: RegisteredModel  # the registered version (new, or the one this data and config made before)
    leaderboard: list[tuple[str, dict[str, float]]] | None  # None: nothing was trained (already registered)


def train(
    cfg: FluxoraConfig, home: Home, progress: Callable[[str], None] | None = None, fan_out: FanOut = SERIAL
) -> TrainResult:
    """Backtest the candidates against seasonal naive and the current champion on the same
    windows, fit the best on the training set read through Feast (point in time), register it
    as `challenger` and let the gate decide on `champion`. Idempotent: the same data version
    and config hash reuse the registered version. Per-series backtest work goes through `fan_out`.

    `home` is bound to the configured tracking server (see `fluxora.runtime.prepare`)."""
    from fluxora.models import backtest as bt
    from fluxora.models.selection import candidate_names, select
    from fluxora.monitoring.alerts import check_url

    if cfg.monitor.webhook_url:  # a malformed URL is a config error now, not after training
        check_url(cfg.monitor.webhook_url)
    say = progress or _log.info
    data_version, inputs = training_data(home)
    name = cfg.train.registered_model_name
    existing = registry.find_version(home, name, data_version, cfg.fingerprint())
    if existing is not None:
        say(f"train: version {existing.version} was already registered from this data and config; nothing to do")
        metrics = registry.run_metrics(home, existing.run_id)
        dvcfiles.restore(home, existing.run_id, metrics)
        return _finish(home, TrainResult(metrics, existing, None))

    panel = stored_panel(home)
    spec = bt.resolve(cfg, panel, weather=cfg.train.weather, horizon=cfg.train.horizon)
    champion, note = _champion_for(home, cfg, spec, panel)
    fixed = {f"champion_v{champion[0]}": champion[1]} if champion else {}
    models = candidate_names(cfg.model.name, cfg.model.candidates, include_baselines=True)
    with relay_logs(say):
        result = bt.run(panel, cfg, models, spec, fixed=fixed, progress=say, fan_out=fan_out)
    board = bt.leaderboard(
        result, cfg.train.promotion_metric, fan_out=fan_out, series_per_task=cfg.infra.series_per_task
    )
    chosen = select(
        board,
        candidate_names(cfg.model.name, cfg.model.candidates),
        cfg.train.promotion_metric,
        cfg.train.promotion_margin,
        note,
    )
    say(f"train: {chosen.winner} wins the backtest; gate: {chosen.decision.reason}")
    dvc_files = dvcfiles.write(home, result, board, chosen.winner)
    failpoint("train:backtested")

    release_memory()  # the backtest's training batches: the final fit's peak does not stack on theirs
    with relay_logs(say):
        model = _fit_final(cfg, home, panel, chosen.winner, fan_out)
    failpoint("train:fitted")
    with tempfile.TemporaryDirectory(prefix="fluxora-model-") as tmp:
        model_dir = model.save(Path(tmp) / "model")
        artifacts = [io.atomic_write_text(Path(tmp) / "leaderboard.json", json.dumps(board, indent=2, default=str))]
        plots: dict[str, Path] = {}
        if cfg.backtest.plots:
            from fluxora.models.plots import backtest_plots, model_plots

            artifacts += backtest_plots(result, board, Path(tmp) / "plots", cfg.backtest.plot_series)
            plots = model_plots(result, board, Path(tmp) / "plots" / "models", cfg.backtest.plot_series)
        competing = tuple(candidate_names(cfg.model.name, cfg.model.candidates))
        backtested = registry.Backtested(board, chosen.winner, competing, plots)
        registered = registry.log_and_register(
            home, cfg, model_dir, data_version, chosen.metrics, chosen.decision, artifacts, backtested, inputs
        )
    if not registered.created:  # a concurrent run registered this data and config while this one trained
        say(f"train: version {registered.version} was {registry.CONCURRENT}; nothing new registered")
        return _finish(home, TrainResult(registry.run_metrics(home, registered.run_id), registered, None))
    dvcfiles.log(home, registered.run_id, dvc_files)
    if not registered.champion:
        _log.warning("version %s stays challenger: %s", registered.version, chosen.decision.reason)
        _alert_refused(cfg, home, registered, chosen.decision.reason, chosen.metrics)
    leaderboard = [(e["model"], e["overall"]) for e in board["models"]]
    return _finish(home, TrainResult(chosen.metrics, registered, leaderboard))


def training_data(home: Home) -> tuple[str, list[registry.DataInput]]:
    """The data version of what a training reads (the validated data's digest, plus the weather
    forecasts' when there are any: new vintages are new training data) and its files as the
    datasets logged to MLflow."""
    digest = io.file_digest(home.validated_data)
    if not home.weather_forecasts.is_file():
        return digest, [registry.DataInput("load (validated)", home.validated_data, digest, digest)]
    forecasts = io.file_digest(home.weather_forecasts)
    version = f"{digest}+wf:{forecasts[:16]}"
    return version, [
        registry.DataInput("load (validated)", home.validated_data, digest, version),
        registry.DataInput("weather forecasts (issued)", home.weather_forecasts, forecasts, version),
    ]


def _alert_refused(
    cfg: FluxoraConfig, home: Home, model: RegisteredModel, reason: str, metrics: dict[str, float]
) -> None:
    """The webhook's `refused_model` alert (monitor.webhook_url); a failed delivery is only logged."""
    from fluxora.monitoring import alerts

    keep = {k: v for k, v in metrics.items() if "." not in k}  # overall figures, not per-model detail
    alert = alerts.Alert(
        "refused_model",
        [f"{model.name} v{model.version}"],
        f"{model.name} version {model.version} stays challenger: {reason}",
        {"version": model.version, "run_id": model.run_id, "reason": reason, "metrics": keep},
    )
    alerts.send(cfg.monitor, home, [alert], "train")


def _champion_for(home: Home, cfg: FluxoraConfig, spec: Any, panel: Any) -> tuple[tuple[str, Any] | None, str]:
    """The current champion as a NativeForecaster if it can be scored on these windows,
    else None and (when one exists) why not (e.g. it needs temperature some series lack)."""
    from fluxora.errors import RegistryError
    from fluxora.features.names import LOAD_HISTORY, SERIES_KEY, TARGET_TEMPERATURE, TEMP_FORECAST, TEMP_HISTORY
    from fluxora.models.native import NativeForecaster, find_model_dir

    if not home.has_registry:
        return None, ""
    try:
        version, local = registry.download_champion(
            home.mlflow_tracking_uri, cfg.train.registered_model_name, home.model_cache
        )
    except RegistryError:
        return None, ""
    try:
        native = NativeForecaster.load(find_model_dir(local))
    except (ValueError, FileNotFoundError, KeyError) as exc:
        return None, f"champion v{version} cannot be loaded by this code ({exc})"
    c = native.contract
    available = {LOAD_HISTORY, TEMP_HISTORY, SERIES_KEY, TEMP_FORECAST} | (
        {TARGET_TEMPERATURE} if spec.weather != "persistence" else set()
    )
    if c.resolution != spec.resolution:
        return None, f"champion v{version} forecasts at {c.resolution}, these windows are at {spec.resolution}"
    if c.horizon < spec.horizon or not set(c.state_features) <= available:
        return None, f"champion v{version} cannot forecast these windows (horizon {c.horizon}, {c.state_features})"
    load_only = [sid for sid, s in panel.series.items() if not np.isfinite(s.temp).any()]
    if c.temperature == "required" and load_only:
        return None, f"champion v{version} needs temperature, which {len(load_only)} series lack (e.g. {load_only[0]})"
    return (version, native), ""


def _fit_final(cfg: FluxoraConfig, home: Home, panel: Any, winner: str, fan_out: FanOut = SERIAL) -> Any:
    """The production model: the winner refit on every origin (or `train.max_origins` of them),
    read through Feast. On a Dask fan-out (`infra=dask`, it has a `client`) XGBoost fits on the
    cluster's workers on `train.dask_max_origins` origins (`fluxora.models.distributed`)."""
    from fluxora.features.store import training_set
    from fluxora.models.backtest import horizon_steps, weather_mode
    from fluxora.models.forecasters import make_forecaster
    from fluxora.models.panel import batch_from_features, concat_batches

    fc, res = cfg.features, panel.resolution
    h = horizon_steps(cfg.train.horizon, res)  # in steps of the data's resolution, as the histories
    lh, lt = res.steps(fc.load_history_hours), res.steps(fc.temp_history_hours)
    weather = weather_mode(cfg, cfg.train.weather)
    client = getattr(fan_out, "client", None)

    def origins(most: int) -> dict[str, np.ndarray]:
        return panel.sampled_training_origins(h, cfg.train.origin_stride_hours, lh, lt, most, cfg.backtest.seed)

    if winner == "xgboost" and client is not None and cfg.model.xgb_base == "none":  # a ridge base fits here
        from fluxora.models.distributed import fit_xgboost

        return fit_xgboost(client, cfg, home, panel, origins(cfg.train.dask_max_origins), h, weather)
    frames = training_set(home, origins(cfg.train.max_origins), fc.feature_service, fc.series_per_batch)
    batch = concat_batches([batch_from_features(f, panel, h, lh, lt) for f in frames])
    batch = batch.with_weather(weather, cfg.backtest.weather_noise_c, cfg.backtest.seed)
    return make_forecaster(winner, cfg, h, weather).fit(batch)


def _finish(home: Home, result: TrainResult) -> TrainResult:
    """Write the run reference for later steps and DVC's training metrics (numbers only): the
    registered version and the trained model's own backtest figures (each model's are in
    `home.backtest_metrics`)."""
    io.atomic_write_text(home.train_run, json.dumps(result.outputs(), indent=2, default=str))
    summary = {"model_version": int(result.model.version), "champion": int(result.model.champion)}
    own = {k: round(v, 4) for k, v in dvcfiles.winner_metrics(result.metrics).items() if v == v}
    io.atomic_write_text(home.train_metrics, json.dumps(summary | own, indent=2))
    return result


def last_train_run(home: Home) -> str | None:
    """The MLflow run of the latest training, if one finished in this home."""
    if not home.train_run.is_file():
        return None
    return str(json.loads(home.train_run.read_text())["model"]["run_id"])
