"""The canonical long format used everywhere: files, features, Feast and the API."""

from __future__ import annotations

SERIES_ID = "series_id"
TIMESTAMP = "timestamp"  # timezone-aware UTC
LOAD = "load"  # the target, in the series' own unit (e.g. MW)
TEMPERATURE = "temperature"  # degrees Celsius at the series' location

CANONICAL_COLUMNS = (SERIES_ID, TIMESTAMP, LOAD, TEMPERATURE)
NUMERIC_COLUMNS = (LOAD, TEMPERATURE)
