"""The canonical long format used everywhere: files, features, Feast and the API."""

from __future__ import annotations

SERIES_ID = "series_id"
TIMESTAMP = "timestamp"  # timezone-aware UTC
LOAD = "load"  # the target, in the series' own unit (e.g. MW)
TEMPERATURE = "temperature"  # degrees Celsius at the series' location

# Weather forecasts, long format: one row per (series or location, issue time, target time).
ISSUED_AT = "issued_at"  # when the forecast was known (UTC)
TARGET_TIME = "target_time"  # the hour it is for (UTC)

CANONICAL_COLUMNS = (SERIES_ID, TIMESTAMP, LOAD, TEMPERATURE)
NUMERIC_COLUMNS = (LOAD, TEMPERATURE)
