"""State-at-origin features: what is known about a series at a forecast origin.

The Feast online store keeps only the latest row per entity, so features are stored as
the state at the origin `o` (arrays of the most recent hourly load and temperature) and
expanded into one design row per forecast step by `fluxora.features.design`, the same way
in training and serving. Every value in a row stamped `o` is observed at or before `o`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view

from fluxora.config import FeaturesConfig
from fluxora.data.frames import data_resolution
from fluxora.data.resolution import Resolution
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.errors import InsufficientDataError
from fluxora.features.names import EVENT_TIMESTAMP, LOAD_HISTORY, LOAD_MEAN_24H, TEMP_HISTORY, TEMP_MEAN_24H


def origin_states(data: pd.DataFrame, cfg: FeaturesConfig, resolution: Resolution | None = None) -> pa.Table:
    """One row per (series, origin) with a full history window, from validated canonical data.

    `data` must be sorted by (series_id, timestamp) with a regular step, the model resolution
    (what the validation gate, `fluxora.data.gate`, writes; read from the data unless given).
    History windows are configured in hours and stored in steps: a week of load is 168 floats
    hourly, 336 at 30 minutes, 672 at 15 minutes.
    """
    res = resolution or data_resolution(data)
    lh, lt = res.steps(cfg.load_history_hours), res.steps(cfg.temp_history_hours)
    day = res.day
    window = max(lh, lt, day)
    ids: list[np.ndarray] = []  # index into `names`: the id column is built in Arrow, not as Python strings
    names: list[str] = []
    stamps: list[np.ndarray] = []
    loads: list[np.ndarray] = []
    temps: list[np.ndarray] = []
    for series_id, group in data.groupby(SERIES_ID, sort=True):
        n = len(group)
        if n < window:
            continue
        load = group[LOAD].to_numpy(dtype="float32")
        temp = group[TEMPERATURE].to_numpy(dtype="float32")
        loads.append(sliding_window_view(load, lh)[window - lh :])
        temps.append(sliding_window_view(temp, lt)[window - lt :])
        stamps.append(_utc_naive(group[TIMESTAMP])[window - 1 :])
        ids.append(np.full(n - window + 1, len(names), dtype="int32"))
        names.append(str(series_id))
    if not ids:
        hours = window // res.per_hour
        raise InsufficientDataError(f"no series has the {hours} hours of history needed for features")
    load_hist = np.concatenate(loads)
    temp_hist = np.concatenate(temps)
    event_ts = pd.DatetimeIndex(np.concatenate(stamps)).tz_localize("UTC")
    return pa.table(
        {
            SERIES_ID: pa.array(names, pa.string()).take(pa.array(np.concatenate(ids))),
            EVENT_TIMESTAMP: pa.array(event_ts),
            LOAD_HISTORY: _list_array(load_hist),
            TEMP_HISTORY: _list_array(temp_hist),
            LOAD_MEAN_24H: pa.array(load_hist[:, -day:].mean(axis=1, dtype="float64")),
            TEMP_MEAN_24H: pa.array(temp_hist[:, -day:].mean(axis=1, dtype="float64")),
        }
    )


def _utc_naive(stamps: pd.Series) -> np.ndarray:
    """datetime64[ns] UTC values of a timestamp column, without a per-element Timestamp detour."""
    index = pd.DatetimeIndex(stamps)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy().astype("datetime64[ns]")


def _list_array(matrix: np.ndarray) -> pa.ListArray:
    rows, width = matrix.shape
    offsets = pa.array(np.arange(0, (rows + 1) * width, width, dtype="int32"))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(matrix).ravel(), pa.float32()))


def stack(values: Iterable[Any], width: int) -> np.ndarray:
    """Turn a column of equal-length arrays (from Feast or Arrow) into a 2-D float64 matrix."""
    matrix = np.stack([np.asarray(v, dtype="float64") for v in values])
    if matrix.ndim != 2 or matrix.shape[1] != width:
        raise ValueError(f"expected history arrays of length {width}, got shape {matrix.shape}")
    return matrix


# Scalar lags and rolling statistics at the origin (`load_stats` view): every value is observed
# at or before the origin it is stamped with; rows start once the longest window is full.
LOAD_LAST = "load_last"  # load at the origin
LOAD_LAG_1H = "load_lag_1h"
LOAD_LAG_24H = "load_lag_24h"
LOAD_LAG_168H = "load_lag_168h"
LOAD_MEAN_6H = "load_mean_6h"
LOAD_MEAN_168H = "load_mean_168h"
LOAD_STD_24H = "load_std_24h"
LOAD_MIN_24H = "load_min_24h"
LOAD_MAX_24H = "load_max_24h"
LOAD_STATS = (
    LOAD_LAST,
    LOAD_LAG_1H,
    LOAD_LAG_24H,
    LOAD_LAG_168H,
    LOAD_MEAN_6H,
    LOAD_MEAN_168H,
    LOAD_STD_24H,
    LOAD_MIN_24H,
    LOAD_MAX_24H,
)


def load_stats(data: pd.DataFrame, resolution: Resolution | None = None) -> pa.Table:
    """Lags and rolling statistics of load per (series, origin), from validated canonical data;
    the windows are the hours their names say, in steps of the data's resolution."""
    k = (resolution or data_resolution(data)).per_hour
    load = data[LOAD].astype("float64")
    by = load.groupby(data[SERIES_ID].astype(str), sort=False)

    def rolling(window: int, how: str) -> pd.Series:
        stat = getattr(by.rolling(window, min_periods=window), how)()
        return stat.reset_index(level=0, drop=True).reindex(data.index)

    out = pd.DataFrame(
        {
            SERIES_ID: data[SERIES_ID].astype(str),
            EVENT_TIMESTAMP: pd.to_datetime(data[TIMESTAMP], utc=True),
            LOAD_LAST: load,
            LOAD_LAG_1H: by.shift(k),
            LOAD_LAG_24H: by.shift(24 * k),
            LOAD_LAG_168H: by.shift(168 * k),
            LOAD_MEAN_6H: rolling(6 * k, "mean"),
            LOAD_MEAN_168H: rolling(168 * k, "mean"),
            LOAD_STD_24H: rolling(24 * k, "std"),
            LOAD_MIN_24H: rolling(24 * k, "min"),
            LOAD_MAX_24H: rolling(24 * k, "max"),
        }
    ).dropna()
    return pa.Table.from_pandas(out.reset_index(drop=True), preserve_index=False)


def calendar_table(data: pd.DataFrame, country: str, timezone: str) -> pa.Table:
    """Calendar of each (series, hour) stamp (`calendar` view), see `fluxora.features.calendar`."""
    from fluxora.features.calendar import calendar_frame

    stamps = pd.to_datetime(data[TIMESTAMP], utc=True)
    # Series share their hours: compute each distinct hour once (a year is 8,760 of them).
    distinct, at = np.unique(_utc_naive(stamps), return_inverse=True)
    cal = calendar_frame(pd.DatetimeIndex(distinct).tz_localize("UTC"), country, timezone).iloc[at.ravel()]
    cal = cal.reset_index(drop=True)
    cal.insert(0, EVENT_TIMESTAMP, stamps.reset_index(drop=True))
    cal.insert(0, SERIES_ID, data[SERIES_ID].astype(str).to_numpy())
    return pa.Table.from_pandas(cal, preserve_index=False)


def feature_tables(
    data: pd.DataFrame, cfg: FeaturesConfig, forecasts: pd.DataFrame | None = None, hours: int = 48, max_age: int = 36
) -> dict[str, pa.Table]:
    """Every offline feature table, by feature-view name (the file is `<name>.parquet`);
    `forecasts`, `hours` and `max_age` as `fluxora.features.weather.forecast_states` takes them."""
    from fluxora.features.weather import forecast_states

    return {
        "origin_state": origin_states(data, cfg),
        **per_series_tables(data, cfg),
        "weather_forecast": forecast_states(forecasts, hours, max_age, step_ns=data_resolution(data).step_ns),
    }


def feature_batches(data: pd.DataFrame | Iterable[pd.DataFrame], cfg: FeaturesConfig) -> Iterator[dict[str, pa.Table]]:
    """The per-series feature tables (every view but `weather_forecast`), `cfg.series_per_batch`
    series at a time, in series order: concatenated, they are `feature_tables`' tables.

    `data` is the validated table, or its whole series already in batches of that size in series
    order (`fluxora.data.io.SeriesBatches` reading the file, so the table is never in memory at once).
    A year of hourly origin states is ~0.8 kB a row (168 + 24 float32), 6.6 GB for 1,000 series,
    so the features step writes them batch by batch instead of building them at once. A batch
    whose series are all too short has no `origin_state` table."""
    parts = _series_parts(data, cfg.series_per_batch) if isinstance(data, pd.DataFrame) else data
    for part in parts:
        part = part.reset_index(drop=True)
        part[SERIES_ID] = part[SERIES_ID].astype(str)
        # Series order, time order kept within a series (the order `_series_parts` cuts in).
        part = part.iloc[np.argsort(part[SERIES_ID].to_numpy(), kind="stable")].reset_index(drop=True)
        tables = per_series_tables(part, cfg)
        with contextlib.suppress(InsufficientDataError):  # too short here; other batches may have states
            tables["origin_state"] = origin_states(part, cfg)
        yield tables
        del part, tables


def _series_parts(data: pd.DataFrame, series_per_batch: int) -> Iterator[pd.DataFrame]:
    ids = data[SERIES_ID].astype(str).to_numpy()
    order = np.argsort(ids, kind="stable")  # sorted by series, time order kept within a series
    series, starts = np.unique(ids[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    size = max(1, series_per_batch)
    for first in range(0, len(series), size):
        last = min(first + size, len(series)) - 1
        yield data.iloc[order[starts[first] : ends[last]]]


def per_series_tables(data: pd.DataFrame, cfg: FeaturesConfig) -> dict[str, pa.Table]:
    """The views computed series by series from validated data, except the origin states."""
    from fluxora.features.weather import observed_weather

    return {
        "load_stats": load_stats(data),
        "weather": observed_weather(data, cfg.heating_base_c, cfg.cooling_base_c),
        "calendar": calendar_table(data, cfg.holiday_country, cfg.timezone),
    }
