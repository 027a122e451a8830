"""The design matrix: state at origin -> one row per forecast step. Pure numpy, shared by
training and serving so the two cannot disagree.

Loads are scaled by the series' mean load over the last week (`scale`), so one global model
serves series of any size; predictions are multiplied back. Calendar is the target's UTC time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE_NAMES = (
    "step",
    "hour",
    "dayofweek",
    "doy_sin",
    "doy_cos",
    "lag_same_hour_day",  # load at the same hour on the latest observed day (scaled)
    "lag_same_hour_week",  # load one week before the target (scaled)
    "load_last",  # load at the origin (scaled)
    "load_mean_24h",  # scaled
    "log_scale",
    "temp_same_hour_day",  # temperature at the same hour on the latest observed day
    "temp_mean_24h",
    "heating_degrees",
    "cooling_degrees",
)

_HOUR_NS = 3_600_000_000_000


@dataclass(frozen=True)
class Design:
    X: np.ndarray  # (n_origins * horizon, n_features) float32
    scale: np.ndarray  # (n_origins * horizon,) float64, multiply predictions by this
    target_times: np.ndarray  # (n_origins * horizon,) datetime64[ns], UTC


def same_hour_offsets(horizon: int) -> np.ndarray:
    """For steps 1..H, how many hours back from the target the same hour was last observed."""
    steps = np.arange(1, horizon + 1)
    return 24 * np.ceil(steps / 24).astype(int)


def design_matrix(
    load_history: np.ndarray,
    temp_history: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    heating_base_c: float,
    cooling_base_c: float,
) -> Design:
    """Expand states (one per origin) into rows ordered origin-major, step-minor.

    load_history: (n, Lh) hourly load ending at the origin; temp_history: (n, Lt), Lt >= 24.
    origins: (n,) datetime64 (UTC). Every input is observed at or before its origin.
    """
    n, lh = load_history.shape
    lt = temp_history.shape[1]
    if horizon < 1 or horizon > 168 or lh < 168 or lt < 24:
        raise ValueError("need 1 <= horizon <= 168, load history >= 168 h and temperature history >= 24 h")
    steps = np.arange(1, horizon + 1)
    back = same_hour_offsets(horizon)
    # Column index, in the history arrays, of the value observed at (origin + step - back).
    day_idx = lh - 1 + steps - back
    week_idx = lh - 1 + steps - 168
    tday_idx = lt - 1 + steps - back

    scale = np.nanmean(load_history[:, -168:], axis=1)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    inv = (1.0 / scale)[:, None]
    lag_day = load_history[:, day_idx] * inv
    lag_week = load_history[:, week_idx] * inv
    temp_day = temp_history[:, tday_idx]

    origin_ns = np.asarray(origins, dtype="datetime64[ns]").astype("int64")
    target_ns = origin_ns[:, None] + steps[None, :] * _HOUR_NS
    hours_since_epoch = target_ns // _HOUR_NS
    hour = hours_since_epoch % 24
    dayofweek = (hours_since_epoch // 24 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    doy_angle = 2 * np.pi * ((hours_since_epoch / 24.0) % 365.2425) / 365.2425

    def per_origin(values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(values[:, None], (n, horizon))

    columns = [
        np.broadcast_to(steps[None, :], (n, horizon)),
        hour,
        dayofweek,
        np.sin(doy_angle),
        np.cos(doy_angle),
        lag_day,
        lag_week,
        per_origin(load_history[:, -1] / scale),
        per_origin(load_history[:, -24:].mean(axis=1) / scale),
        per_origin(np.log(scale)),
        temp_day,
        per_origin(temp_history[:, -24:].mean(axis=1)),
        np.maximum(heating_base_c - temp_day, 0.0),
        np.maximum(temp_day - cooling_base_c, 0.0),
    ]
    X = np.stack([np.asarray(c, dtype="float32").reshape(-1) for c in columns], axis=1)
    return Design(
        X=X,
        scale=np.repeat(scale, horizon),
        target_times=target_ns.reshape(-1).astype("datetime64[ns]"),
    )


def seasonal_naive(load_history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Seasonal naive forecast (season 24 or 168 hours), same row order as `design_matrix`."""
    lh = load_history.shape[1]
    steps = np.arange(1, horizon + 1)
    if season == 24:
        idx = lh - 1 + steps - same_hour_offsets(horizon)
    elif season == 168:
        idx = lh - 1 + steps - 168
    else:
        raise ValueError("season must be 24 or 168 hours")
    return load_history[:, idx].reshape(-1)
