"""Weather features: observed temperature terms at a time, and issued temperature forecasts.

Observed terms are stamped at their observation time. Forecasts are stamped at their issue
time and hold the forecast temperature for the hours after it (a row issued at `i` holds
i+1 .. i+H), so a point-in-time read at origin `o` returns the latest forecast issued at or
before `o` — never a forecast issued later, and never observed values posing as forecasts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from fluxora.data.schema import SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.features.names import EVENT_TIMESTAMP

HEATING_DEGREES = "heating_degrees"  # max(heating_base - T, 0), degree C, at the stamped hour
COOLING_DEGREES = "cooling_degrees"  # max(T - cooling_base, 0)
HEATING_DEGREE_HOURS_24H = "heating_degree_hours_24h"  # sum over the 24 h ending at the stamp
COOLING_DEGREE_HOURS_24H = "cooling_degree_hours_24h"
TEMP_MIN_24H = "temp_min_24h"
TEMP_MAX_24H = "temp_max_24h"
WEATHER_FEATURES = (
    TEMPERATURE,
    HEATING_DEGREES,
    COOLING_DEGREES,
    HEATING_DEGREE_HOURS_24H,
    COOLING_DEGREE_HOURS_24H,
    TEMP_MIN_24H,
    TEMP_MAX_24H,
)

# A forecast source (long format): one row per (series, issue time, target time).
ISSUED_AT = "issued_at"
TARGET_TIME = "target_time"
TEMP_FORECAST = "temp_forecast"  # float32[H]: forecast temperature at issue+1h .. issue+Hh


WEATHER_SCHEMA = pa.schema(
    [
        pa.field(SERIES_ID, pa.string()),
        pa.field(EVENT_TIMESTAMP, pa.timestamp("ns", tz="UTC")),
        *(pa.field(name, pa.float64()) for name in WEATHER_FEATURES),
    ]
)


def observed_weather(data: pd.DataFrame, heating_base_c: float, cooling_base_c: float) -> pa.Table:
    """Observed temperature terms per (series, hour); rolling terms need a full 24 h window.
    Load-only series have no rows (typed by `WEATHER_SCHEMA` even when no series has weather)."""
    temp = data[TEMPERATURE].astype("float64")
    heating = np.maximum(heating_base_c - temp, 0.0)
    cooling = np.maximum(temp - cooling_base_c, 0.0)
    frame = pd.DataFrame(
        {SERIES_ID: data[SERIES_ID].astype(str), "t": temp, "h": heating, "c": cooling}, index=data.index
    )
    roll = frame.groupby(SERIES_ID, sort=False)[["t", "h", "c"]].rolling(24, min_periods=24)
    out = pd.DataFrame(
        {
            SERIES_ID: frame[SERIES_ID],
            EVENT_TIMESTAMP: pd.to_datetime(data[TIMESTAMP], utc=True),
            TEMPERATURE: temp,
            HEATING_DEGREES: heating,
            COOLING_DEGREES: cooling,
            HEATING_DEGREE_HOURS_24H: _ungroup(roll.sum()["h"], frame.index),
            COOLING_DEGREE_HOURS_24H: _ungroup(roll.sum()["c"], frame.index),
            TEMP_MIN_24H: _ungroup(roll.min()["t"], frame.index),
            TEMP_MAX_24H: _ungroup(roll.max()["t"], frame.index),
        }
    ).dropna()
    out[EVENT_TIMESTAMP] = out[EVENT_TIMESTAMP].astype("datetime64[ns, UTC]")
    return pa.Table.from_pandas(out.reset_index(drop=True), schema=WEATHER_SCHEMA, preserve_index=False)


def _ungroup(values: pd.Series, index: pd.Index) -> pd.Series:
    return values.reset_index(level=0, drop=True).reindex(index)


FORECAST_SCHEMA = pa.schema(
    [
        pa.field(SERIES_ID, pa.string()),
        pa.field(EVENT_TIMESTAMP, pa.timestamp("ns", tz="UTC")),
        pa.field(TEMP_FORECAST, pa.list_(pa.float32())),
    ]
)


def forecast_states(forecasts: pd.DataFrame | None, hours: int) -> pa.Table:
    """Forecast temperature known at each hourly origin `o`, for o+1h .. o+`hours` (NaN if absent).

    `forecasts` is long format (series_id, issued_at, target_time, temperature). At origin `o`
    the latest forecast issued at or before `o` is used, re-indexed to `o`'s leads; origins more
    than `hours` after the latest issue get no row (stale). None or empty (no forecast source
    configured) gives an empty table with the same schema: observed data is never a forecast.
    """
    if forecasts is None or forecasts.empty:
        return FORECAST_SCHEMA.empty_table()
    width = 2 * hours  # leads kept per issue: `hours` for the origin plus up to `hours` of staleness
    issued = pd.to_datetime(forecasts[ISSUED_AT], utc=True)
    lead = (pd.to_datetime(forecasts[TARGET_TIME], utc=True) - issued) // pd.Timedelta(hours=1)
    keep = (lead >= 1) & (lead <= width)  # a value for the issue hour itself is not a forecast
    long = pd.DataFrame(
        {
            SERIES_ID: forecasts[SERIES_ID].astype(str)[keep],
            ISSUED_AT: issued[keep],
            "lead": lead[keep].astype(int),
            TEMPERATURE: forecasts[TEMPERATURE].astype("float32")[keep],
        }
    )
    wide = long.pivot_table(index=[SERIES_ID, ISSUED_AT], columns="lead", values=TEMPERATURE, aggfunc="last")
    wide = wide.reindex(columns=range(1, width + 1)).sort_index()
    matrix = wide.to_numpy(dtype="float32")
    issues = wide.index.to_frame(index=False).assign(row=np.arange(len(wide)))
    origins = []
    for series_id, group in issues.groupby(SERIES_ID, sort=True):
        grid = pd.date_range(group[ISSUED_AT].min(), group[ISSUED_AT].max() + pd.Timedelta(hours=hours), freq="h")
        origins.append(pd.DataFrame({SERIES_ID: series_id, EVENT_TIMESTAMP: grid}))
    frame = pd.merge_asof(
        pd.concat(origins, ignore_index=True).sort_values(EVENT_TIMESTAMP),
        issues.sort_values(ISSUED_AT),
        left_on=EVENT_TIMESTAMP,
        right_on=ISSUED_AT,
        by=SERIES_ID,
        direction="backward",
    ).sort_values([SERIES_ID, EVENT_TIMESTAMP], ignore_index=True)
    frame = frame[frame[EVENT_TIMESTAMP] - frame[ISSUED_AT] <= pd.Timedelta(hours=hours)].reset_index(drop=True)
    age = (frame[EVENT_TIMESTAMP] - frame[ISSUED_AT]).to_numpy() // np.timedelta64(1, "h")
    values = matrix[frame["row"].to_numpy()[:, None], age[:, None] + np.arange(hours)[None, :]]
    offsets = pa.array(np.arange(0, (len(frame) + 1) * hours, hours, dtype="int32"))
    return pa.table(
        {
            SERIES_ID: pa.array(frame[SERIES_ID].astype(str), pa.string()),
            EVENT_TIMESTAMP: pa.array(frame[EVENT_TIMESTAMP], pa.timestamp("ns", tz="UTC")),
            TEMP_FORECAST: pa.ListArray.from_arrays(offsets, pa.array(values.ravel(), pa.float32())),
        },
        schema=FORECAST_SCHEMA,
    )
