"""Feast definitions for Fluxora: only declarations here (`feast apply` imports every file).

Every view is "state at the forecast origin": a row stamped `o` holds only values observed (or,
for weather forecasts, issued) at or before `o`. History is precomputed into columns by
`fluxora.features.build`, so TTLs stay short (a row is valid only near the instant it is stamped
with) and the online store's one-row-per-series is exactly the state to forecast from.
The offline sources live under $FLUXORA_HOME, written by the feature step of the pipeline.
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Array, Float32, Float64, Int32, Int64

_HOME = Path(os.environ.get("FLUXORA_HOME", ".fluxora"))
# Hourly data: a row stamped o still answers for origins in [o, o + 2 h), no staler.
_TTL = timedelta(hours=2)


def _source(name: str) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=str(_HOME / "features" / f"{name}.parquet"),
        timestamp_field="event_timestamp",
    )


# One load series (meter, feeder, region); the key every feature and forecast is joined on.
series = Entity(name="series", join_keys=["series_id"], description="A load series")

# Load and temperature history as arrays (the model's state; `fluxora.features.design` expands it).
origin_state = FeatureView(
    name="origin_state",
    entities=[series],
    ttl=_TTL,
    schema=[
        Field(name="load_history", dtype=Array(Float32), description="hourly load, oldest first, ending at the origin"),
        Field(name="temp_history", dtype=Array(Float32), description="hourly temperature (C), ending at the origin"),
        Field(name="load_mean_24h", dtype=Float64),
        Field(name="temp_mean_24h", dtype=Float64),
    ],
    source=_source("origin_state"),
    online=True,
)

# Scalar load lags and rolling statistics at the origin (windows end at the origin, inclusive).
load_stats = FeatureView(
    name="load_stats",
    entities=[series],
    ttl=_TTL,
    schema=[
        Field(name="load_last", dtype=Float64, description="load at the origin"),
        Field(name="load_lag_1h", dtype=Float64),
        Field(name="load_lag_24h", dtype=Float64),
        Field(name="load_lag_168h", dtype=Float64),
        Field(name="load_mean_6h", dtype=Float64),
        Field(name="load_mean_168h", dtype=Float64),
        Field(name="load_std_24h", dtype=Float64),
        Field(name="load_min_24h", dtype=Float64),
        Field(name="load_max_24h", dtype=Float64),
    ],
    source=_source("load_stats"),
    online=True,
)

# Observed weather at the origin: temperature and its non-linear (degree) terms.
weather = FeatureView(
    name="weather",
    entities=[series],
    ttl=_TTL,
    schema=[
        Field(name="temperature", dtype=Float64, description="observed temperature (C) at the origin"),
        Field(name="heating_degrees", dtype=Float64, description="max(heating_base_c - T, 0)"),
        Field(name="cooling_degrees", dtype=Float64, description="max(T - cooling_base_c, 0)"),
        Field(name="heating_degree_hours_24h", dtype=Float64),
        Field(name="cooling_degree_hours_24h", dtype=Float64),
        Field(name="temp_min_24h", dtype=Float64),
        Field(name="temp_max_24h", dtype=Float64),
    ],
    source=_source("weather"),
    online=True,
)

# Temperature forecast known at the origin for the hours after it (empty without a forecast source).
weather_forecast = FeatureView(
    name="weather_forecast",
    entities=[series],
    ttl=_TTL,
    schema=[
        Field(name="temp_forecast", dtype=Array(Float32), description="forecast temperature (C) at o+1h .. o+Hh"),
        Field(name="weather_issued_at", dtype=Int64, description="newest issue time used (epoch seconds)"),
        Field(name="weather_origin", dtype=Int64, description="the origin o of this row (epoch seconds)"),
    ],
    source=_source("weather_forecast"),
    online=True,
)

# Calendar of the origin in the series' local time (`fluxora.features.calendar` also serves target times).
calendar = FeatureView(
    name="calendar",
    entities=[series],
    ttl=_TTL,
    schema=[
        Field(name="hour", dtype=Int32),
        Field(name="day_of_week", dtype=Int32, description="Monday = 0"),
        Field(name="day_of_year", dtype=Int32),
        Field(name="is_holiday", dtype=Int32),
        Field(name="is_working_day", dtype=Int32),
    ],
    source=_source("calendar"),
    online=True,
)

# The train/serve contracts: training reads a service offline, the API reads it online. A new
# version is added alongside; a registered model names the one it was trained on.
load_forecast_v1 = FeatureService(
    name="load_forecast_v1",
    features=[origin_state[["load_history", "temp_history", "load_mean_24h", "temp_mean_24h"]]],
)
load_forecast_v2 = FeatureService(
    name="load_forecast_v2",
    features=[origin_state, load_stats, weather, weather_forecast[["temp_forecast"]], calendar],
)
# v3: the same origin state as v1; its models' design adds has_temperature (temperature is
# optional: a load-only series has NaN temperature history) and the bridge-day and
# lag-day-holiday calendar terms (`fluxora.features.names.FEATURE_SETS`).
load_forecast_v3 = FeatureService(
    name="load_forecast_v3",
    features=[origin_state[["load_history", "temp_history", "load_mean_24h", "temp_mean_24h"]]],
)
# v4: v3 plus the issued weather forecast at the origin (empty without a forecast source); a
# model trained on issued forecasts reads `temp_forecast`, the others read v3's features only.
load_forecast_v4 = FeatureService(
    name="load_forecast_v4",
    features=[
        origin_state[["load_history", "temp_history", "load_mean_24h", "temp_mean_24h"]],
        weather_forecast,
    ],
)
# v5: v4's views; its models' design adds the same-hour loads of each of the last 7 days and
# their mean over the week and over the days of the target's day type (all from the origin
# state's load history: `fluxora.features.names.FEATURE_NAMES_V5`).
load_forecast_v5 = FeatureService(
    name="load_forecast_v5",
    features=[
        origin_state[["load_history", "temp_history", "load_mean_24h", "temp_mean_24h"]],
        weather_forecast,
    ],
)
