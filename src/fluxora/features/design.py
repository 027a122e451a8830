"""The design matrix: state at origin -> one row per forecast step. Pure numpy (pandas only
for time-zone conversion), shared by training and serving so the two cannot disagree.

Loads are scaled by the series' mean load over the last week (`scale`), so one global model
serves series of any size; predictions are multiplied back. Calendar features are computed
on demand from the target timestamps in the series' local time (`Calendar.timezone`; the
UTC hour shifts by one at DST changes, the local daily routine does not) with public
holidays from the `holidays` package.

Temperature at the target time is not observed at the origin. `target_temperature` is what
the caller knows: a weather forecast, the observed value in an ex-post backtest, or, when
None, persistence (the temperature at the same hour on the latest observed day).

Temperature is optional. An origin without it (a load-only series: its temperature history is
NaN, or None for a whole load-only batch) gets `has_temperature` 0 and a neutral 0 in every
temperature term, so one model can learn the weather response from the series that have
weather and still forecast those that do not.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from fluxora.data.resolution import HOUR_NS, HOURLY, Resolution
from fluxora.features.names import FEATURE_NAMES, FEATURE_NAMES_V5, TEMPERATURE_FEATURES

COL = {name: i for i, name in enumerate(FEATURE_NAMES_V5)}  # column index in the full (latest) feature set

_HOUR_NS = HOUR_NS
_DAY_NS = 24 * HOUR_NS


@dataclass(frozen=True)
class Calendar:
    """Local calendar of the series a model forecasts: IANA time zone and holiday country."""

    timezone: str = "UTC"
    holiday_country: str = ""  # ISO code for `holidays`, e.g. "GB", "FR", "US"; "" = no holidays
    holiday_subdivision: str = ""  # e.g. "ENG" for GB, "CA" for US; "" = national holidays only


@dataclass(frozen=True)
class Design:
    X: np.ndarray  # (n_origins * horizon, n_features) float32
    scale: np.ndarray  # (n_origins * horizon,) float64, multiply predictions by this
    target_times: np.ndarray  # (n_origins * horizon,) datetime64[ns], UTC


def same_hour_offsets(horizon: int, day: int = 24) -> np.ndarray:
    """For steps 1..H, how many steps back from the target the same time of day was last
    observed (`day`: steps in a day, 24 hourly, 96 at 15 minutes)."""
    steps = np.arange(1, horizon + 1)
    return day * np.ceil(steps / day).astype(int)


def local_ns(utc_ns: np.ndarray, timezone: str) -> np.ndarray:
    """Nanoseconds since the epoch on the local wall clock, for UTC instants in ns (any shape).
    On a DST day the local day has 23 or 25 hours (92 or 100 quarter-hours): each instant gets
    its own wall-clock time, so time of day and the local date stay right."""
    utc_ns = np.asarray(utc_ns, dtype="int64")
    if timezone in ("UTC", "Etc/UTC", ""):
        return utc_ns
    import pandas as pd

    local = pd.DatetimeIndex(utc_ns.reshape(-1)).tz_localize("UTC").tz_convert(timezone).tz_localize(None)
    return local.asi8.reshape(utc_ns.shape)


def local_hours(utc_ns: np.ndarray, timezone: str) -> np.ndarray:
    """Whole hours since the epoch on the local wall clock, for UTC instants in ns (any shape)."""
    return local_ns(utc_ns, timezone) // _HOUR_NS


@functools.lru_cache(maxsize=256)
def _holiday_days(country: str, subdivision: str, year: int) -> frozenset[int]:
    import holidays

    table = holidays.country_holidays(country, subdiv=subdivision or None, years=[year])
    epoch = np.datetime64("1970-01-01", "D")
    return frozenset(int((np.datetime64(day, "D") - epoch).astype("int64")) for day in table)


def holiday_flags(days: np.ndarray, calendar: Calendar) -> np.ndarray:
    """1.0 where the local day (days since the epoch) is a public holiday of the calendar."""
    days = np.asarray(days, dtype="int64")
    if not calendar.holiday_country:
        return np.zeros(days.shape)
    years = days.astype("datetime64[D]").astype("datetime64[Y]").astype("int64") + 1970
    known: set[int] = set()
    for year in np.unique(years):
        known |= _holiday_days(calendar.holiday_country, calendar.holiday_subdivision, int(year))
    return np.isin(days, np.fromiter(known, dtype="int64", count=len(known))).astype("float64")


def _working(days: np.ndarray, calendar: Calendar) -> np.ndarray:
    weekday = (days + 3) % 7 < 5  # 1970-01-01 was a Thursday (Monday = 0)
    return (weekday & (holiday_flags(days, calendar) == 0)).astype("float64")


def bridge_days(days: np.ndarray, calendar: Calendar) -> np.ndarray:
    """1.0 for a working day between two non-working days one of which is a public holiday
    (the Friday after a Thursday holiday, the Monday before a Tuesday one)."""
    days = np.asarray(days, dtype="int64")
    before, after = days - 1, days + 1
    between = (_working(before, calendar) == 0) & (_working(after, calendar) == 0)
    next_to_holiday = (holiday_flags(before, calendar) + holiday_flags(after, calendar)) > 0
    return ((_working(days, calendar) == 1) & between & next_to_holiday).astype("float64")


def design_matrix(
    load_history: np.ndarray,
    temp_history: np.ndarray | None,
    origins: np.ndarray,
    horizon: int,
    heating_base_c: float,
    cooling_base_c: float,
    *,
    target_temperature: np.ndarray | None = None,
    calendar: Calendar | None = None,
    features: tuple[str, ...] = FEATURE_NAMES,
    resolution: Resolution = HOURLY,
) -> Design:
    """Expand states (one per origin) into rows ordered origin-major, step-minor.

    Everything counts in steps of `resolution` (hourly unless given): load_history: (n, Lh)
    load ending at the origin, at least a week of steps; temp_history: (n, Lt), at least a day,
    NaN rows (or None) for origins without temperature. origins: (n,) datetime64 (UTC).
    horizon: steps ahead, at most a week. target_temperature: (n, horizon) or None
    (persistence). `features`: the columns, in order (a model's contract names them). The
    `step` column is the lead time in hours (fractional below an hour: at hourly data the step
    number) and `hour` the local time of day in hours (10.25 at 10:15). Every input except
    `target_temperature` is observed at or before its origin.
    """
    calendar = calendar or Calendar()
    res = resolution
    day, week = res.day, res.week
    n, lh = load_history.shape
    if temp_history is None:
        temp_history = np.full((n, day), np.nan)
    lt = temp_history.shape[1]
    if horizon < 1 or horizon > week or lh < week or lt < day:
        raise ValueError(
            f"need 1 <= horizon <= {week} steps, load history >= {week} and temperature history >= {day} "
            f"steps (a week and a day at {res.name})"
        )
    steps = np.arange(1, horizon + 1)
    back = same_hour_offsets(horizon, day)
    # Column index, in the history arrays, of the value observed at (origin + step - back).
    day_idx = lh - 1 + steps - back
    week_idx = lh - 1 + steps - week
    tday_idx = lt - 1 + steps - back

    scale = np.nanmean(load_history[:, -week:], axis=1)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    inv = (1.0 / scale)[:, None]
    lag_day = load_history[:, day_idx] * inv
    lag_week = load_history[:, week_idx] * inv
    temp_day = temp_history[:, tday_idx]
    if target_temperature is None:
        temp_target = temp_day
    else:
        temp_target = np.asarray(target_temperature, dtype="float64")
        if temp_target.shape != (n, horizon):
            raise ValueError(f"target temperature must have shape {(n, horizon)}, got {temp_target.shape}")
    temp_mean = temp_history[:, -day:].mean(axis=1)
    has_temp = np.isfinite(temp_history).any(axis=1)

    origin_ns = np.asarray(origins, dtype="datetime64[ns]").astype("int64")
    target_ns = origin_ns[:, None] + steps[None, :] * res.step_ns
    wall = local_ns(target_ns, calendar.timezone)
    local_day = wall // _DAY_NS
    local = wall / _HOUR_NS  # local hours since the epoch, fractional below the hour
    lag_local_day = local_ns(target_ns - back[None, :] * res.step_ns, calendar.timezone) // _DAY_NS
    doy_angle = 2 * np.pi * ((local / 24.0) % 365.2425) / 365.2425

    def per_origin(values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(values[:, None], (n, horizon))

    lag_day_holiday = holiday_flags(lag_local_day, calendar)
    columns = {
        "step": np.broadcast_to((steps / res.per_hour)[None, :], (n, horizon)),
        "hour": (wall % _DAY_NS) / _HOUR_NS,
        "dayofweek": (local_day + 3) % 7,
        "doy_sin": np.sin(doy_angle),
        "doy_cos": np.cos(doy_angle),
        "holiday": holiday_flags(local_day, calendar),
        "working_day": _working(local_day, calendar),
        "lag_day_working": _working(lag_local_day, calendar),
        "lag_same_hour_day": lag_day,
        "lag_same_hour_week": lag_week,
        "load_last": per_origin(load_history[:, -1] / scale),
        "load_mean_24h": per_origin(load_history[:, -day:].mean(axis=1) / scale),
        "log_scale": per_origin(np.log(scale)),
        "temp_same_hour_day": temp_day,
        "temp_mean_24h": per_origin(temp_mean),
        "temp_target": temp_target,
        "temp_change": temp_target - temp_day,
        "heating_degrees": np.maximum(heating_base_c - temp_target, 0.0),
        "cooling_degrees": np.maximum(temp_target - cooling_base_c, 0.0),
        "heating_degrees_24h": per_origin(np.maximum(heating_base_c - temp_mean, 0.0)),
        "has_temperature": per_origin(has_temp.astype("float64")),
        "bridge_day": bridge_days(local_day, calendar),
        "lag_day_holiday": lag_day_holiday,
    }
    if any(f in _V5_ONLY for f in features):
        columns |= _last_week(load_history, inv, target_ns, back, local_day, calendar, res)
    unknown = [f for f in features if f not in columns]
    if unknown:
        raise ValueError(f"unknown design features {unknown}")
    X = np.empty((n * horizon, len(features)), dtype="float32")
    for j, name in enumerate(features):
        values = np.broadcast_to(np.asarray(columns[name], dtype="float64"), (n, horizon))
        if name in TEMPERATURE_FEATURES and not has_temp.all():
            values = np.where(has_temp[:, None], values, 0.0)  # neutral for origins without weather
        X[:, j] = values.reshape(-1)
    return Design(
        X=X,
        scale=np.repeat(scale, horizon),
        target_times=target_ns.reshape(-1).astype("datetime64[ns]"),
    )


_V5_ONLY = frozenset(FEATURE_NAMES_V5) - frozenset(FEATURE_NAMES)


def _last_week(
    load_history: np.ndarray,
    inv: np.ndarray,
    target_ns: np.ndarray,
    back: np.ndarray,
    local_day: np.ndarray,
    calendar: Calendar,
    res: Resolution = HOURLY,
) -> dict[str, np.ndarray]:
    """The v5 columns: same-hour loads on each of the last 7 observed days and their mean over
    all of them and over the days of the target's day type (working or not)."""
    lh = load_history.shape[1]
    steps = np.arange(1, target_ns.shape[1] + 1)
    lags, working = [], []
    for d in range(1, 8):
        idx = lh - 1 + steps - back - res.day * (d - 1)
        ok = idx >= 0
        values = np.where(ok[None, :], load_history[:, np.maximum(idx, 0)], np.nan) * inv
        lags.append(values)
        back_ns = (back + res.day * (d - 1))[None, :] * res.step_ns
        day = local_ns(target_ns - back_ns, calendar.timezone) // _DAY_NS
        working.append(_working(day, calendar))
    stack = np.stack(lags)  # (7, n, H)
    same = np.stack(working) == _working(local_day, calendar)[None]
    with np.errstate(invalid="ignore"):
        profile = np.nanmean(stack, axis=0) if np.isfinite(stack).any() else np.full(stack.shape[1:], np.nan)
        count = (same & np.isfinite(stack)).sum(axis=0)
        total = np.where(same & np.isfinite(stack), stack, 0.0).sum(axis=0)
    daytype = np.where(count > 0, total / np.maximum(count, 1), profile)
    # a day the history does not reach (long horizons) reads as the mean of the days it does
    out = {f"lag_same_hour_d{d}": np.where(np.isfinite(lags[d - 1]), lags[d - 1], profile) for d in range(2, 7)}
    return out | {"profile_same_hour_7d": profile, "profile_same_daytype_7d": daytype}


def linear_basis(X: np.ndarray, features: tuple[str, ...] = FEATURE_NAMES) -> np.ndarray:
    """Explicit interactions for a linear model on design rows (trees learn these themselves).

    The daily profile changes with season, day type and temperature, so per-hour terms are
    crossed with the season (doy sin/cos), a non-working-day flag and the degree terms; the
    weight of yesterday's load depends on the step and on whether yesterday was a working day.
    Built by scattering into a preallocated float32 matrix (one-hot blocks are mostly zeros).
    `features` names X's columns (the model contract's feature set).
    """
    X = np.asarray(X, dtype="float32")
    col = {name: i for i, name in enumerate(features)}
    n = X.shape[0]
    rows = np.arange(n)
    hour = X[:, col["hour"]].astype(int) % 24  # the hour of a sub-hourly time of day
    dow = X[:, col["dayofweek"]].astype(int) % 7
    # the lead day (the step column is the lead in hours): (step - 1) // 24 at hourly data
    bucket = np.clip(np.ceil(X[:, col["step"]] / 24.0).astype(int) - 1, 0, 6)
    off = 1.0 - X[:, col["working_day"]]
    lag_day, lag_week = X[:, col["lag_same_hour_day"]], X[:, col["lag_same_hour_week"]]
    plain_cols = [col[c] for c in features if c not in ("hour", "dayofweek", "step")]
    per_hour = (
        np.ones(n, dtype="float32"),
        off,
        X[:, col["doy_sin"]],
        X[:, col["doy_cos"]],
        X[:, col["heating_degrees"]],
        X[:, col["cooling_degrees"]],
    )
    holiday_lag = "lag_day_holiday" in col  # feature sets from v3 on
    width = len(plain_cols) + 24 * len(per_hour) + 7 + 7 * 2 + 3 + int(holiday_lag)
    out = np.zeros((n, width), dtype="float32")
    out[:, : len(plain_cols)] = X[:, plain_cols]
    at = len(plain_cols)
    for values in per_hour:
        out[rows, at + hour] = values
        at += 24
    out[rows, at + dow] = 1.0
    at += 7
    out[rows, at + bucket] = lag_day
    at += 7
    out[rows, at + bucket] = lag_week
    at += 7
    out[:, at] = lag_day * (1.0 - X[:, col["lag_day_working"]])
    out[:, at + 1] = lag_day * off
    out[:, at + 2] = lag_week * off
    if holiday_lag:  # yesterday's load says little about today when yesterday was a holiday
        out[:, at + 3] = lag_day * X[:, col["lag_day_holiday"]]
    return out


def seasonal_naive(load_history: np.ndarray, horizon: int, season: int, resolution: Resolution = HOURLY) -> np.ndarray:
    """Seasonal naive forecast (season 24 or 168 hours: a day or a week of steps at the
    resolution, 96 or 672 at 15 minutes), same row order as `design_matrix`."""
    lh = load_history.shape[1]
    steps = np.arange(1, horizon + 1)
    if season == 24:
        idx = lh - 1 + steps - same_hour_offsets(horizon, resolution.day)
    elif season == 168:
        idx = lh - 1 + steps - resolution.week
    else:
        raise ValueError("season must be 24 or 168 hours")
    return load_history[:, idx].reshape(-1)
