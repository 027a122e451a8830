"""XGBoost tuning without the search library: the search space from `tune.space`, the tuning
windows (before the gate's), one trial's score, and the overrides a result becomes.

`fluxora.steps.tune` drives these with Optuna; nothing here imports it (a trial is anything
with Optuna's `suggest_int` / `suggest_float`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

import numpy as np

from fluxora.config import FluxoraConfig, ModelConfig, TuneConfig, TuneSpace
from fluxora.errors import ConfigError
from fluxora.models import backtest as bt
from fluxora.models.panel import HOUR, Panel

MODEL = "xgboost"
METRICS = ("mae", "rmse", "mape", "smape", "mase", "pinball")  # overall backtest metrics, lower is better
POINT_METRICS = frozenset(METRICS) - {"pinball"}  # scored on the point forecast alone
LOG_SCALE = frozenset({"n_estimators", "learning_rate", "min_child_weight"})
# (lowest allowed, highest allowed, low end open): XGBoost's own domains
_DOMAINS: dict[str, tuple[float, float, bool]] = {
    "n_estimators": (1, np.inf, False),
    "max_depth": (1, 64, False),
    "learning_rate": (0, 1, True),
    "subsample": (0, 1, True),
    "colsample_bytree": (0, 1, True),
    "min_child_weight": (0, np.inf, True),
}


class Trial(Protocol):
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = ...) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = ...) -> float: ...


@dataclass(frozen=True)
class Dimension:
    """One searched setting: `model.<name>` between `low` and `high`."""

    name: str
    low: float
    high: float
    integer: bool
    log: bool

    def suggest(self, trial: Trial) -> int | float:
        if self.integer:
            return int(trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log))
        # Four significant digits: the value scored, logged and printed as an override is the same number.
        return float(f"{trial.suggest_float(self.name, self.low, self.high, log=self.log):.4g}")


def dimensions(space: TuneSpace) -> list[Dimension]:
    """The searched settings of `tune.space` (a `[]` entry is not searched); ConfigError naming
    the key when a range is malformed or outside XGBoost's domain."""
    out = []
    for f in fields(space):
        bounds = list(getattr(space, f.name))
        if not bounds:
            continue
        key = f"tune.space.{f.name}"
        if len(bounds) != 2:
            raise ConfigError(f"invalid configuration: {key}: {bounds} must be [low, high] or [] (not searched)")
        low, high = (float(b) for b in bounds)
        lo, hi, open_low = _DOMAINS[f.name]
        if low > high:
            raise ConfigError(f"invalid configuration: {key}: low {bounds[0]} is above high {bounds[1]}")
        if low < lo or (open_low and low <= lo) or high > hi:
            side = ">" if open_low else ">="
            raise ConfigError(f"invalid configuration: {key}: {bounds} outside {side} {lo:g} and <= {hi:g}")
        out.append(Dimension(f.name, low, high, integer=f.type in ("list[int]", list[int]), log=f.name in LOG_SCALE))
    if not out:
        raise ConfigError("invalid configuration: tune.space: every range is [] (nothing to search)")
    return out


def check(tune: TuneConfig, promotion_metric: str) -> str:
    """The metric tuned (tune.metric, else train.promotion_metric); ConfigError naming the key on a bad setting."""
    if tune.trials < 1:
        raise ConfigError(f"invalid configuration: tune.trials: {tune.trials} (use 1 or more)")
    if tune.timeout_s < 0:
        raise ConfigError(f"invalid configuration: tune.timeout_s: {tune.timeout_s} (use 0 for no limit, or seconds)")
    if tune.windows < 1 or tune.step_hours < 1:
        raise ConfigError(
            f"invalid configuration: tune.windows / tune.step_hours: {tune.windows} / {tune.step_hours} (use 1 or more)"
        )
    if tune.startup_trials < 0:
        raise ConfigError(f"invalid configuration: tune.startup_trials: {tune.startup_trials} (use 0 or more)")
    metric = tune.metric or promotion_metric
    if metric not in METRICS:
        key = "tune.metric" if tune.metric else "train.promotion_metric (tune.metric is empty)"
        raise ConfigError(f"invalid configuration: {key}: {metric!r} cannot be tuned (use one of {', '.join(METRICS)})")
    dimensions(tune.space)
    return metric


def windows(gate: bt.Spec, panel: Panel, count: int, step_hours: int) -> bt.Spec:
    """The gate's spec on `count` origins `step_hours` apart, the last one's targets ending at the
    gate's first origin: no tuning target is a target the gate scores."""
    last = gate.origins.min() - gate.horizon * panel.step
    origins = last - np.arange(count - 1, -1, -1) * step_hours * HOUR
    return replace(gate, origins=origins.astype("datetime64[ns]"))


def configured(model: ModelConfig, dims: list[Dimension]) -> dict[str, int | float] | None:
    """The configured values of the searched settings (a study's trial 0), or None when one is
    outside its range (it could not be a trial)."""
    values = {d.name: getattr(model, d.name) for d in dims}
    inside = all(d.low <= values[d.name] <= d.high for d in dims)
    return values if inside else None


def with_params(cfg: FluxoraConfig, params: dict[str, Any], metric: str) -> FluxoraConfig:
    """`cfg` with a trial's settings. A point metric skips quantile calibration: the point
    forecast is the refit on every origin either way (`Forecaster.fit`), at half the cost."""
    calibration = 0.0 if metric in POINT_METRICS else cfg.model.calibration_days
    return replace(cfg, model=replace(cfg.model, **params, calibration_days=calibration))


def score(panel: Panel, cfg: FluxoraConfig, spec: bt.Spec) -> dict[str, float]:
    """XGBoost's overall backtest metrics on `spec`'s windows with `cfg`'s settings, and its fit seconds."""
    result = bt.run(panel, cfg, [MODEL], spec)
    return result.scores(MODEL) | {"fit_seconds": result.runs[MODEL].fit_seconds}


def overrides(params: dict[str, Any]) -> list[str]:
    """The Hydra overrides that give `fluxora run` (or backtest) these settings."""
    return [f"model.{name}={value}" for name, value in params.items()]
