"""Open-Meteo: hourly 2 m temperature for a latitude/longitude, historical (archive API) or forecast.

Requests use `timeformat=unixtime` and `timezone=GMT`, so `hourly.time` holds UTC epoch seconds
and no local-time parsing is needed. Documented at https://open-meteo.com/en/docs and
https://open-meteo.com/en/docs/historical-weather-api.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import numpy as np
import pandas as pd

from fluxora.data.connectors.http import DEFAULT_RETRY, RetryPolicy, get_json
from fluxora.data.errors import ConnectorError
from fluxora.data.schema import TEMPERATURE, TIMESTAMP

ARCHIVE_URL = "https://archive-api.open-meteo.com/v1/archive"
FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
VARIABLE = "temperature_2m"
PROVIDER = "Open-Meteo"


def historical(
    client: httpx.Client, lat: float, lon: float, start: date, end: date, policy: RetryPolicy = DEFAULT_RETRY
) -> pd.DataFrame:
    """Observed (reanalysis) hourly temperature from `start` to `end` inclusive: timestamp (UTC), temperature."""
    params = _params(lat, lon) | {"start_date": start.isoformat(), "end_date": end.isoformat()}
    return parse(get_json(client, ARCHIVE_URL, params, PROVIDER, policy))


def forecast(
    client: httpx.Client, lat: float, lon: float, days: int = 7, policy: RetryPolicy = DEFAULT_RETRY
) -> pd.DataFrame:
    """Forecast hourly temperature for the next `days` days (1..16)."""
    if not 1 <= days <= 16:
        raise ConnectorError(f"{PROVIDER}: forecast days must be between 1 and 16, got {days}")
    return parse(get_json(client, FORECAST_URL, _params(lat, lon) | {"forecast_days": days}, PROVIDER, policy))


def _params(lat: float, lon: float) -> dict[str, Any]:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConnectorError(f"{PROVIDER}: latitude/longitude out of range: {lat}, {lon}")
    return {"latitude": lat, "longitude": lon, "hourly": VARIABLE, "timeformat": "unixtime", "timezone": "GMT"}


def parse(body: Any) -> pd.DataFrame:
    """The documented response (`hourly.time` epoch seconds, `hourly.temperature_2m` °C, nulls allowed)."""
    if isinstance(body, dict) and body.get("error"):
        raise ConnectorError(f"{PROVIDER}: {body.get('reason', 'error')}")
    try:
        hourly = body["hourly"]
        times, values = hourly["time"], hourly[VARIABLE]
    except (KeyError, TypeError):
        raise ConnectorError(f"{PROVIDER}: unexpected response, no hourly.time/{VARIABLE}") from None
    unit = (body.get("hourly_units") or {}).get(VARIABLE, "°C")
    if unit not in ("°C", "C"):
        raise ConnectorError(f"{PROVIDER}: expected temperature in °C, got {unit!r}")
    if len(times) != len(values):
        raise ConnectorError(f"{PROVIDER}: {len(times)} times but {len(values)} values")
    stamps = pd.to_datetime(np.asarray(times, dtype="int64"), unit="s", utc=True)
    temps = np.array([np.nan if v is None else v for v in values], dtype="float64")
    return pd.DataFrame({TIMESTAMP: stamps, TEMPERATURE: temps})
