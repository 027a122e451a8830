"""Names of the features and model inputs that the feature step, training, serving and the
pipeline share. Standard library only, like `fluxora.data.schema`: the serving path imports
these names without pandas.
"""

from __future__ import annotations

EVENT_TIMESTAMP = "event_timestamp"  # every feature table's time column: the origin (UTC)

# The `origin_state` view (`fluxora.features.build`): the state of a series at its origin o.
LOAD_HISTORY = "load_history"  # float32[load_history_hours]: load at o-(L-1) .. o
TEMP_HISTORY = "temp_history"  # float32[temp_history_hours]: temperature at o-(L-1) .. o
LOAD_MEAN_24H = "load_mean_24h"
TEMP_MEAN_24H = "temp_mean_24h"
STATE_FEATURES = (LOAD_HISTORY, TEMP_HISTORY, LOAD_MEAN_24H, TEMP_MEAN_24H)

# Model state entries that are not stored features (`fluxora.models.native`).
SERIES_KEY = "series_id"  # state entry (n,) of series ids: needed by per-series models (prophet)
TARGET_TEMPERATURE = "target_temperature"  # state entry (n, horizon): weather forecast at the targets

# The `weather_forecast` view (`fluxora.features.weather`): the issued forecast known at origin o.
TEMP_FORECAST = "temp_forecast"  # float32[H]: forecast temperature at o+1h .. o+Hh (NaN: no forecast)
WEATHER_ISSUED_AT = "weather_issued_at"  # int64: the newest issue time used, seconds since the epoch
WEATHER_ORIGIN = "weather_origin"  # int64: the origin o the row is for, seconds since the epoch

# The design matrix columns, in order (`fluxora.features.design`); a model's contract records them.
# Each feature service version names one set: models trained on an older set keep serving it.
FEATURE_NAMES_V1 = (
    "step",
    "hour",  # local hour of the target
    "dayofweek",  # local day of week of the target (Monday = 0)
    "doy_sin",
    "doy_cos",
    "holiday",  # the target's local date is a public holiday
    "working_day",  # not a weekend day and not a holiday
    "lag_day_working",  # the day `lag_same_hour_day` comes from was a working day
    "lag_same_hour_day",  # load at the same hour on the latest observed day (scaled)
    "lag_same_hour_week",  # load one week before the target (scaled)
    "load_last",  # load at the origin (scaled)
    "load_mean_24h",  # scaled
    "log_scale",
    "temp_same_hour_day",  # temperature at the same hour on the latest observed day
    "temp_mean_24h",
    "temp_target",  # temperature at the target as known at the origin (see fluxora.features.design)
    "temp_change",  # temp_target - temp_same_hour_day: weather change since the lag day
    "heating_degrees",  # max(heating_base - temp_target, 0): heating load is linear below the base
    "cooling_degrees",  # max(temp_target - cooling_base, 0)
    "heating_degrees_24h",  # of the last day's mean temperature: buildings' thermal inertia
)
FEATURE_NAMES = (
    *FEATURE_NAMES_V1,
    # 1 where the origin has temperature; 0 for a load-only series, whose temperature terms
    # above are then a neutral 0 (one model serves series with and without weather)
    "has_temperature",
    "bridge_day",  # a working day between a holiday and a weekend or holiday (many take it off)
    "lag_day_holiday",  # the day `lag_same_hour_day` comes from was a public holiday
)
# v5 (issue 13): the same state, more of the last week's load. Same-hour loads of each of the
# last 7 observed days (day 1 is `lag_same_hour_day`), and their mean over the last week's
# working or non-working days like the target's (the load profile of this kind of day).
LAG_DAYS_V5 = tuple(f"lag_same_hour_d{d}" for d in range(2, 7))
FEATURE_NAMES_V5 = (
    *FEATURE_NAMES,
    *LAG_DAYS_V5,  # load at the same hour d observed days back (scaled; NaN beyond the history)
    "profile_same_hour_7d",  # mean of the same-hour loads of the last 7 days (scaled)
    "profile_same_daytype_7d",  # the same mean over those of them whose day type is the target's
)
# Feature service (features.feature_service) -> the design columns its models read.
FEATURE_SETS = {
    "load_forecast_v1": FEATURE_NAMES_V1,
    "load_forecast_v2": FEATURE_NAMES_V1,
    "load_forecast_v3": FEATURE_NAMES,
    "load_forecast_v4": FEATURE_NAMES,  # v3's design; the service adds the issued weather forecast
    "load_forecast_v5": FEATURE_NAMES_V5,  # v4's views; the design adds the last week's same-hour loads
}
TEMPERATURE_FEATURES = frozenset(
    {
        "temp_same_hour_day",
        "temp_mean_24h",
        "temp_target",
        "temp_change",
        "heating_degrees",
        "cooling_degrees",
        "heating_degrees_24h",
    }
)
