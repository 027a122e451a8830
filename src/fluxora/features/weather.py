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

from fluxora.data.schema import ISSUED_AT, SERIES_ID, TARGET_TIME, TEMPERATURE, TIMESTAMP
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


def _utc_ns(values: pd.Series) -> np.ndarray:
    """Times as int64 nanoseconds since the epoch, UTC (naive values are taken as UTC)."""
    return pd.to_datetime(values, utc=True).dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").astype("int64")


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

    `forecasts` is long format (series_id, issued_at, target_time, temperature), one row per
    vintage: a full run per issue time (a utility's feed, Open-Meteo's live forecast) or fixed
    lead offsets (Open-Meteo's previous runs: each hour predicted 1, 2, ... days before). For each
    target hour the latest vintage issued at or before `o` wins; a vintage more than 2 x `hours`
    ahead of its target is too old to use. Origins more than `hours` after the series' latest
    issue get no row (stale). None or empty (no forecast source configured) gives an empty table
    with the same schema: observed data is never a forecast.
    """
    if forecasts is None or forecasts.empty:
        return FORECAST_SCHEMA.empty_table()
    width = 2 * hours  # oldest usable vintage: `hours` for the origin plus up to `hours` of staleness
    hour = 3_600_000_000_000  # ns; times are int64 ns since the epoch (UTC) from here on
    issued, target = _utc_ns(forecasts[ISSUED_AT]), _utc_ns(forecasts[TARGET_TIME])
    lead = (target - issued) // hour
    keep = (lead >= 1) & (lead <= width)  # a value for the issue hour itself is not a forecast
    names, codes = np.unique(forecasts[SERIES_ID].astype(str).to_numpy()[keep], return_inverse=True)
    vintages = pd.DataFrame(
        {
            "code": codes.astype("int64"),
            ISSUED_AT: issued[keep],
            # One integer key per (series, target hour) keeps the as-of join fast on millions of cells.
            "key": codes.astype("int64") * (1 << 32) + target[keep] // hour,
            TEMPERATURE: forecasts[TEMPERATURE].to_numpy(dtype="float32")[keep],
        }
    ).drop_duplicates(["key", ISSUED_AT], keep="last")
    if vintages.empty:
        return FORECAST_SCHEMA.empty_table()
    # Hourly origins per series, from its first issue to `hours` past its last.
    span = vintages.groupby("code")[ISSUED_AT].agg(["min", "max"])
    first = -(-span["min"].to_numpy() // hour) * hour  # ceil to the hour
    count = (span["max"].to_numpy() + hours * hour - first) // hour + 1
    origin_code = np.repeat(span.index.to_numpy(), count)
    origin_at = np.repeat(first, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)) * hour
    issues = vintages[["code", ISSUED_AT]].drop_duplicates().sort_values(ISSUED_AT)
    latest = pd.merge_asof(
        pd.DataFrame({"code": origin_code, "at": origin_at, "row": np.arange(len(origin_at))}).sort_values(
            "at", kind="stable"
        ),
        issues,
        left_on="at",
        right_on=ISSUED_AT,
        by="code",
        direction="backward",
    ).sort_values("row")
    fresh = (latest["at"] - latest[ISSUED_AT]).to_numpy() <= hours * hour  # NaN (no issue yet) is False
    origin_code, origin_at = origin_code[fresh], origin_at[fresh]
    # Every (origin, lead) asks for its target hour's latest vintage issued by the origin.
    n = len(origin_at)
    at = np.repeat(origin_at, hours)
    steps = np.tile(np.arange(1, hours + 1, dtype="int64"), n)
    wanted = pd.DataFrame(
        {"at": at, "key": np.repeat(origin_code, hours) * (1 << 32) + at // hour + steps, "cell": np.arange(n * hours)}
    )
    found = pd.merge_asof(
        wanted.sort_values("at", kind="stable"),
        vintages[["key", ISSUED_AT, TEMPERATURE]].sort_values(ISSUED_AT),
        left_on="at",
        right_on=ISSUED_AT,
        by="key",
        direction="backward",
    )
    values = np.full(n * hours, np.nan, dtype="float32")
    values[found["cell"].to_numpy()] = found[TEMPERATURE].to_numpy(dtype="float32")
    offsets = pa.array(np.arange(0, (n + 1) * hours, hours, dtype="int32"))
    return pa.table(
        {
            SERIES_ID: pa.array(names[origin_code], pa.string()),
            EVENT_TIMESTAMP: pa.array(origin_at, pa.timestamp("ns", tz="UTC")),
            TEMP_FORECAST: pa.ListArray.from_arrays(offsets, pa.array(values, pa.float32())),
        },
        schema=FORECAST_SCHEMA,
    )
