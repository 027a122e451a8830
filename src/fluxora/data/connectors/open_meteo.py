"""Open-Meteo: hourly 2 m temperature for a latitude/longitude: observed (archive API), the live
forecast, and past forecasts as they were issued (previous-runs API).

Requests use `timeformat=unixtime` and `timezone=GMT`, so `hourly.time` holds UTC epoch seconds
and no local-time parsing is needed. Documented at https://open-meteo.com/en/docs,
https://open-meteo.com/en/docs/historical-weather-api and
https://open-meteo.com/en/docs/previous-runs-api (`temperature_2m_previous_dayN` is the value
predicted N x 24 h before its valid time, N = 1..7).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import numpy as np
import pandas as pd

from fluxora.data.connectors.http import DEFAULT_RETRY, RetryPolicy, get_json
from fluxora.data.errors import ConnectorError
from fluxora.data.schema import ISSUED_AT, TARGET_TIME, TEMPERATURE, TIMESTAMP

ARCHIVE_URL = "https://archive-api.open-meteo.com/v1/archive"
FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
PREVIOUS_RUNS_URL = "https://previous-runs-api.open-meteo.com/v1/forecast"
MAX_PREVIOUS_DAY = 7
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


def previous_runs(
    client: httpx.Client,
    lat: float,
    lon: float,
    start: date,
    end: date,
    days: tuple[int, ...] = (1, 2),
    policy: RetryPolicy = DEFAULT_RETRY,
) -> pd.DataFrame:
    """Past forecasts as issued, for every hour from `start` to `end` inclusive: for each N in
    `days`, the temperature predicted N x 24 h before the hour. Long format: issued_at,
    target_time (both UTC), temperature; hours the provider has no value for are dropped."""
    if not days or any(not 1 <= n <= MAX_PREVIOUS_DAY for n in days):
        raise ConnectorError(f"{PROVIDER}: previous-run days must be between 1 and {MAX_PREVIOUS_DAY}, got {days}")
    if end < start:
        raise ConnectorError(f"{PROVIDER}: end date {end} is before start date {start}")
    variables = [f"{VARIABLE}_previous_day{n}" for n in sorted(set(days))]
    params = _params(lat, lon) | {
        "hourly": ",".join(variables),
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
    }
    body = get_json(client, PREVIOUS_RUNS_URL, params, PROVIDER, policy)
    frames = []
    for n, variable in zip(sorted(set(days)), variables, strict=True):
        one = parse(body, variable).dropna(subset=[TEMPERATURE])
        frames.append(
            pd.DataFrame(
                {
                    ISSUED_AT: one[TIMESTAMP] - pd.Timedelta(days=n),
                    TARGET_TIME: one[TIMESTAMP],
                    TEMPERATURE: one[TEMPERATURE],
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values([ISSUED_AT, TARGET_TIME], ignore_index=True)


def issued_forecast(
    client: httpx.Client,
    lat: float,
    lon: float,
    issued_at: pd.Timestamp,
    days: int = 2,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> pd.DataFrame:
    """The live forecast stamped with the time it was fetched (`issued_at`, UTC): long format
    issued_at, target_time, temperature, for the hours after `issued_at` only. The fetch time is
    a safe issue time: the forecast was known then, whenever the model actually ran."""
    stamp = pd.Timestamp(issued_at)
    if stamp.tzinfo is None:
        raise ConnectorError(f"{PROVIDER}: issued_at must carry a time zone, got {issued_at}")
    one = forecast(client, lat, lon, days, policy).dropna(subset=[TEMPERATURE])
    one = one[one[TIMESTAMP] > stamp]
    return pd.DataFrame(
        {ISSUED_AT: stamp.tz_convert("UTC"), TARGET_TIME: one[TIMESTAMP], TEMPERATURE: one[TEMPERATURE]}
    ).reset_index(drop=True)


def _params(lat: float, lon: float) -> dict[str, Any]:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConnectorError(f"{PROVIDER}: latitude/longitude out of range: {lat}, {lon}")
    return {"latitude": lat, "longitude": lon, "hourly": VARIABLE, "timeformat": "unixtime", "timezone": "GMT"}


def parse(body: Any, variable: str = VARIABLE) -> pd.DataFrame:
    """The documented response (`hourly.time` epoch seconds, `hourly.<variable>` °C, nulls allowed)."""
    if isinstance(body, dict) and body.get("error"):
        raise ConnectorError(f"{PROVIDER}: {body.get('reason', 'error')}")
    try:
        hourly = body["hourly"]
        times, values = hourly["time"], hourly[variable]
    except (KeyError, TypeError):
        raise ConnectorError(f"{PROVIDER}: unexpected response, no hourly.time/{variable}") from None
    unit = (body.get("hourly_units") or {}).get(variable, "°C")
    if unit not in ("°C", "C"):
        raise ConnectorError(f"{PROVIDER}: expected temperature in °C, got {unit!r}")
    if len(times) != len(values):
        raise ConnectorError(f"{PROVIDER}: {len(times)} times but {len(values)} values")
    stamps = pd.to_datetime(np.asarray(times, dtype="int64"), unit="s", utc=True)
    temps = np.array([np.nan if v is None else v for v in values], dtype="float64")
    return pd.DataFrame({TIMESTAMP: stamps, TEMPERATURE: temps})
