"""Training and time-ordered holdout evaluation against seasonal naive baselines."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fluxora.config import FluxoraConfig
from fluxora.data.schema import LOAD, SERIES_ID, TIMESTAMP
from fluxora.errors import InsufficientDataError
from fluxora.features.build import EVENT_TIMESTAMP, LOAD_HISTORY, TEMP_HISTORY, stack
from fluxora.features.design import design_matrix, seasonal_naive
from fluxora.models import metrics
from fluxora.models.xgboost_model import XGBoostForecaster

_HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class TrainingSet:
    """Design rows (origin-major, step-minor) with actual targets and baselines."""

    X: np.ndarray
    y: np.ndarray  # actual load at the target time
    scale: np.ndarray
    origins: np.ndarray  # per row, datetime64[ns] UTC
    series: np.ndarray  # per row
    naive_day: np.ndarray
    naive_week: np.ndarray


@dataclass
class TrainResult:
    model: XGBoostForecaster
    metrics: dict[str, float]
    beats_baseline: bool
    reason: str
    n_train_rows: int
    n_holdout_rows: int
    holdout_start: pd.Timestamp
    extra: dict[str, float] = field(default_factory=dict)


def sample_origins(states: pd.DataFrame, data: pd.DataFrame, horizon: int, stride_hours: int) -> pd.DataFrame:
    """Entity rows (series_id, event_timestamp) for training: every `stride` hours, targets observed."""
    last = data.groupby(SERIES_ID)[TIMESTAMP].max()
    ts = states[EVENT_TIMESTAMP]
    hours = (ts - pd.Timestamp(0, tz="UTC")) // _HOUR
    keep = (hours % stride_hours == 0) & (ts + horizon * _HOUR <= states[SERIES_ID].map(last))
    out = states.loc[keep, [SERIES_ID, EVENT_TIMESTAMP]].reset_index(drop=True)
    if out.empty:
        raise InsufficientDataError("no forecast origin has both a full history and observed targets")
    return out


def training_set(features: pd.DataFrame, data: pd.DataFrame, cfg: FluxoraConfig) -> TrainingSet:
    """Join point-in-time features (one row per origin) with the actual loads at target times."""
    h, fc = cfg.train.horizon, cfg.features
    features = features.dropna(subset=[LOAD_HISTORY, TEMP_HISTORY]).sort_values([SERIES_ID, EVENT_TIMESTAMP])
    if features.empty:
        raise InsufficientDataError("the feature store returned no rows for the training origins")
    load_hist = stack(features[LOAD_HISTORY], fc.load_history_hours)
    temp_hist = stack(features[TEMP_HISTORY], fc.temp_history_hours)
    origins = features[EVENT_TIMESTAMP].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    design = design_matrix(load_hist, temp_hist, origins, h, fc.heating_base_c, fc.cooling_base_c)
    series = np.repeat(features[SERIES_ID].to_numpy(), h)
    return TrainingSet(
        X=design.X,
        y=_actuals(data, series, design.target_times),
        scale=design.scale,
        origins=np.repeat(origins, h),
        series=series,
        naive_day=seasonal_naive(load_hist, h, 24),
        naive_week=seasonal_naive(load_hist, h, 168),
    )


def _actuals(data: pd.DataFrame, series: np.ndarray, target_times: np.ndarray) -> np.ndarray:
    """Actual load for each (series, target time); NaN where not observed."""
    y = np.full(len(series), np.nan)
    for sid, group in data.groupby(SERIES_ID, sort=False):
        rows = np.flatnonzero(series == sid)
        if rows.size == 0:
            continue
        t0 = group[TIMESTAMP].iloc[0].tz_convert("UTC").tz_localize(None).to_datetime64()
        idx = ((target_times[rows] - t0) // np.timedelta64(1, "h")).astype("int64")
        loads = group[LOAD].to_numpy(dtype="float64")
        ok = (idx >= 0) & (idx < loads.size)
        y[rows[ok]] = loads[idx[ok]]
    return y


def train(ts: TrainingSet, cfg: FluxoraConfig) -> TrainResult:
    """Fit on origins before the holdout, score the holdout, then refit on every origin.

    Origins whose targets reach into the holdout are purged from training, so no
    training target is observed after the holdout starts.
    """
    horizon = cfg.train.horizon
    last_origin = ts.origins.max()
    holdout_start = last_origin - np.timedelta64(cfg.train.holdout_days * 24, "h")
    is_test = ts.origins >= holdout_start
    is_train = ts.origins + np.timedelta64(horizon, "h") < holdout_start
    span_days = (holdout_start - ts.origins.min()) / np.timedelta64(1, "D")
    if not is_test.any() or span_days < cfg.train.min_train_days:
        raise InsufficientDataError(
            f"need at least {cfg.train.min_train_days} days of training origins before a "
            f"{cfg.train.holdout_days}-day holdout; have {span_days:.0f} days"
        )
    target = ts.y / ts.scale
    model = XGBoostForecaster(cfg.model).fit(ts.X[is_train], target[is_train])
    forecast = model.predict(ts.X[is_test]) * ts.scale[is_test]
    actual = ts.y[is_test]
    result = {f"{k}": v for k, v in metrics.scores(actual, forecast).items()}
    day = metrics.scores(actual, ts.naive_day[is_test])
    week = metrics.scores(actual, ts.naive_week[is_test])
    result |= {f"naive_daily_{k}": v for k, v in day.items()}
    result |= {f"naive_weekly_{k}": v for k, v in week.items()}
    key = cfg.train.promotion_metric
    baseline = min(day[key], week[key])
    result[f"baseline_{key}"] = baseline
    result[f"skill_{key}"] = 1.0 - result[key] / baseline
    beats = bool(result[key] < baseline)
    reason = f"{key} {result[key]:.3f} {'<' if beats else '>='} best seasonal naive {baseline:.3f}"
    final = XGBoostForecaster(cfg.model).fit(ts.X, target)  # production model sees the latest data
    return TrainResult(
        model=final,
        metrics=result,
        beats_baseline=beats,
        reason=reason,
        n_train_rows=int(is_train.sum()),
        n_holdout_rows=int(is_test.sum()),
        holdout_start=pd.Timestamp(holdout_start, tz="UTC"),
    )
