"""Open-Meteo and EIA-930 connectors against recorded responses in the providers' documented formats.

No network: an httpx MockTransport plays the provider, so the real request building, paging,
retry/backoff and error handling run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from fluxora.config import DataConfig, EiaConfig, WeatherConfig
from fluxora.data.connectors import eia, open_meteo
from fluxora.data.connectors.http import RetryPolicy, get_json
from fluxora.data.errors import ConnectorError, DataSourceError
from fluxora.data.ingest import ingest
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP

RECORDED = Path(__file__).parent / "recorded"
FAST = RetryPolicy(attempts=3, backoff_s=0.5, timeout_s=5.0)


def _recorded(name: str) -> object:
    return json.loads((RECORDED / name).read_text())


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_open_meteo_historical_request_and_parse() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_recorded("open_meteo_archive_berlin.json"))

    df = open_meteo.historical(_client(handler), 52.52, 13.41, date(2024, 3, 31), date(2024, 4, 1), FAST)
    params = seen[0].url.params
    assert seen[0].url.host == "archive-api.open-meteo.com"
    assert params["timeformat"] == "unixtime" and params["hourly"] == "temperature_2m" and params["timezone"] == "GMT"
    assert (params["start_date"], params["end_date"]) == ("2024-03-31", "2024-04-01")
    assert len(df) == 48 and df[TIMESTAMP].iloc[0] == pd.Timestamp("2024-03-31 00:00", tz="UTC")
    assert df[TIMESTAMP].diff().dropna().eq(pd.Timedelta("1h")).all()  # UTC: no DST hole on 31 March
    assert np.isnan(df[TEMPERATURE].iloc[5]) and df[TEMPERATURE].notna().sum() == 47


def test_open_meteo_forecast_and_provider_errors_are_clear() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(400, json=_recorded("open_meteo_error.json"))

    with pytest.raises(ConnectorError, match="Open-Meteo: HTTP 400: Cannot initialize WeatherVariable"):
        open_meteo.forecast(_client(handler), 52.5, 13.4, days=3, policy=FAST)
    assert len(requests) == 1  # a client error is not retried
    assert requests[0].url.host == "api.open-meteo.com" and requests[0].url.params["forecast_days"] == "3"
    with pytest.raises(ConnectorError, match="between 1 and 16"):
        open_meteo.forecast(_client(handler), 52.5, 13.4, days=30)
    with pytest.raises(ConnectorError, match="out of range"):
        open_meteo.forecast(_client(handler), 95.0, 13.4)


def test_transient_failures_are_retried_with_backoff_and_retry_after() -> None:
    replies = iter(
        [
            httpx.Response(503, text="upstream busy"),
            httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "rate limited"}),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    waits: list[float] = []
    body = get_json(_client(lambda _: next(replies)), "https://x.test/a", {}, "P", FAST, sleep=waits.append)
    assert body == {"ok": True}
    assert waits == [0.5, 7.0]  # exponential first wait, then the server's Retry-After


def test_timeouts_give_up_after_the_configured_attempts() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("slow", request=request)

    waits: list[float] = []
    with pytest.raises(ConnectorError, match="P: giving up after 3 attempts: timed out after 5 s"):
        get_json(_client(handler), "https://x.test/a", {}, "P", FAST, sleep=waits.append)
    assert calls == 3 and waits == [0.5, 1.0]


def _eia_server(requests: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.params.get("api_key") != "secret-key":
            return httpx.Response(403, json=_recorded("eia_invalid_key.json"))
        page = 1 if request.url.params["offset"] == "0" else 2
        return httpx.Response(200, json=_recorded(f"eia_region_data_page{page}.json"))

    return handler


def test_eia_pages_through_the_v2_api_and_parses_utc_hours() -> None:
    requests: list[httpx.Request] = []
    start, end = pd.Timestamp("2024-01-01 00:00", tz="UTC"), pd.Timestamp("2024-01-01 02:00", tz="UTC")
    df = eia.demand(_client(_eia_server(requests)), ["CISO", "PJM"], start, end, "secret-key", FAST)
    assert [r.url.params["offset"] for r in requests] == ["0", "4"]
    params = requests[0].url.params
    assert params.get_list("facets[respondent][]") == ["CISO", "PJM"] and params["facets[type][]"] == "D"
    assert (params["frequency"], params["start"], params["end"]) == ("hourly", "2024-01-01T00", "2024-01-01T02")
    assert len(df) == 6 and sorted(df[SERIES_ID].unique()) == ["CISO", "PJM"]
    pjm = df[df[SERIES_ID] == "PJM"]
    assert pjm[TIMESTAMP].tolist() == list(pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC"))
    assert np.isnan(pjm[LOAD].iloc[1]) and pjm[LOAD].iloc[2] == 80400.0  # a null value stays NaN for the gate


def test_eia_invalid_or_missing_key_is_clear_and_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    with pytest.raises(ConnectorError, match="EIA: HTTP 403: An invalid api_key was supplied") as info:
        eia.demand(_client(_eia_server([])), ["PJM"], start, start, "wrong-key", FAST)
    assert "wrong-key" not in str(info.value)
    monkeypatch.delenv(eia.KEY_ENV, raising=False)
    with pytest.raises(ConnectorError, match="set EIA_API_KEY"):
        eia.api_key()


def _weather_from_request(request: httpx.Request) -> httpx.Response:
    """An Open-Meteo archive reply built for the requested days, temperature = latitude / 10."""
    p = request.url.params
    times = pd.date_range(p["start_date"], pd.Timestamp(p["end_date"]) + pd.Timedelta(hours=23), freq="h", tz="UTC")
    lat = float(p["latitude"])
    body = {
        "utc_offset_seconds": 0,
        "hourly_units": {"time": "unixtime", "temperature_2m": "°C"},
        "hourly": {"time": [int(t.timestamp()) for t in times], "temperature_2m": [lat / 10] * len(times)},
    }
    return httpx.Response(200, json=body)


def test_eia_source_with_weather_joined_by_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eia.KEY_ENV, "secret-key")
    eia_handler = _eia_server([])

    def handler(request: httpx.Request) -> httpx.Response:
        return _weather_from_request(request) if "open-meteo" in request.url.host else eia_handler(request)

    cfg = DataConfig(
        source="eia",
        eia=EiaConfig(respondents=["CISO", "PJM"], start="2024-01-01T00", end="2024-01-01T02"),
        weather=WeatherConfig(provider="open_meteo", locations={"CISO": "37.0,-120.0", "PJM": "40.0,-77.0"}),
    )
    summary = ingest(cfg, tmp_path / "raw.parquet", tmp_path, client=_client(handler))
    raw = pd.read_parquet(tmp_path / "raw.parquet")
    assert summary.rows == len(raw) == 6
    assert raw.groupby(SERIES_ID)[TEMPERATURE].unique().map(list).to_dict() == {"CISO": [3.7], "PJM": [4.0]}

    cfg.weather.locations = {"CISO": "37.0,-120.0"}
    with pytest.raises(DataSourceError, match="no weather location for series 'PJM'"):
        ingest(cfg, tmp_path / "raw.parquet", tmp_path, client=_client(handler))
