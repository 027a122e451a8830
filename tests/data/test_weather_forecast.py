"""Weather forecasts as issued: Open-Meteo's previous runs and live forecast (recorded responses in
the provider's documented format, played by an httpx MockTransport), and the file screen."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from fluxora.config import WeatherConfig
from fluxora.data import weather_forecast
from fluxora.data.connectors import open_meteo
from fluxora.data.connectors.http import RetryPolicy
from fluxora.data.errors import ConnectorError, DataSourceError
from fluxora.data.schema import ISSUED_AT, SERIES_ID, TARGET_TIME, TEMPERATURE
from fluxora.features.names import TEMP_FORECAST
from fluxora.features.weather import forecast_states

RECORDED = Path(__file__).parent / "recorded"
FAST = RetryPolicy(attempts=3, backoff_s=0.0, timeout_s=5.0)


def _replay(name: str, seen: list[httpx.Request]) -> httpx.Client:
    body = json.loads((RECORDED / name).read_text())

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_previous_runs_are_stamped_by_the_time_they_were_issued() -> None:
    seen: list[httpx.Request] = []
    client = _replay("open_meteo_previous_runs_berlin.json", seen)
    got = open_meteo.previous_runs(client, 52.52, 13.41, date(2024, 3, 30), date(2024, 3, 31), (1, 2), FAST)
    params = seen[0].url.params
    assert seen[0].url.host == "previous-runs-api.open-meteo.com"
    assert params["hourly"] == "temperature_2m_previous_day1,temperature_2m_previous_day2"
    assert (params["start_date"], params["end_date"], params["timezone"]) == ("2024-03-30", "2024-03-31", "GMT")
    lead = got[TARGET_TIME] - got[ISSUED_AT]
    assert set(lead) == {pd.Timedelta(days=1), pd.Timedelta(days=2)}
    assert (lead == pd.Timedelta(days=1)).sum() == 47 and (lead == pd.Timedelta(days=2)).sum() == 46  # nulls dropped
    first = got[got[TARGET_TIME] == pd.Timestamp("2024-03-30 02:00", tz="UTC")]
    assert list(first[ISSUED_AT]) == [pd.Timestamp(f"2024-03-{d} 02:00", tz="UTC") for d in (28, 29)]
    with pytest.raises(ConnectorError, match="between 1 and 7"):
        open_meteo.previous_runs(client, 52.5, 13.4, date(2024, 3, 30), date(2024, 3, 31), (0,))
    with pytest.raises(ConnectorError, match="before start date"):
        open_meteo.previous_runs(client, 52.5, 13.4, date(2024, 3, 31), date(2024, 3, 30))


def test_an_origin_sees_only_the_vintages_issued_by_then() -> None:
    """Backfilled vintages feed the point-in-time forecast state: at an origin the latest forecast
    issued at or before it is used; changing vintages issued later leaves the state unchanged."""
    client = _replay("open_meteo_previous_runs_berlin.json", [])
    rows = open_meteo.previous_runs(client, 52.52, 13.41, date(2024, 3, 30), date(2024, 3, 31), (1, 2), FAST)
    forecasts = rows.assign(**{SERIES_ID: "berlin"})
    origin = pd.Timestamp("2024-03-30 00:00", tz="UTC")
    later = forecasts[ISSUED_AT] > origin
    corrupted = forecasts.assign(**{TEMPERATURE: np.where(later, 99.0, forecasts[TEMPERATURE])})

    def state(frame: pd.DataFrame) -> list[float]:
        table = forecast_states(frame, 24, 48).to_pandas()
        return list(table.loc[table["event_timestamp"] == origin, TEMP_FORECAST].iloc[0])

    seen = state(forecasts)
    assert seen == state(corrupted) and 99.0 not in seen

    # The latest vintage wins per target hour: the day-1 run, except at 03:00 where the provider
    # has no day-1 value and the day-2 run is the latest known.
    def value(target: str, days: int) -> float:
        t = pd.Timestamp(target, tz="UTC")
        row = forecasts[(forecasts[TARGET_TIME] == t) & (forecasts[ISSUED_AT] == t - pd.Timedelta(days=days))]
        return float(np.float32(row[TEMPERATURE].iloc[0]))

    assert seen[0] == value("2024-03-30 01:00", 1) and seen[2] == value("2024-03-30 03:00", 2)
    assert np.isfinite(seen).all()
    # Series never mix: a second series' vintages move only its own state.
    other = forecasts.assign(**{SERIES_ID: "munich", TEMPERATURE: forecasts[TEMPERATURE] + 100})
    both = forecast_states(pd.concat([other, forecasts], ignore_index=True), 24, 48).to_pandas()
    at_origin = both[both["event_timestamp"] == origin].set_index(SERIES_ID)[TEMP_FORECAST]
    np.testing.assert_allclose(list(at_origin["munich"]), np.asarray(seen) + 100, rtol=1e-6)
    assert list(at_origin["berlin"]) == seen


def test_live_forecast_is_stamped_with_its_fetch_time_and_keeps_only_later_hours() -> None:
    client = _replay("open_meteo_archive_berlin.json", [])  # same documented shape as /v1/forecast
    fetched = pd.Timestamp("2024-03-31 11:30", tz="UTC")
    got = open_meteo.issued_forecast(client, 52.52, 13.41, fetched, days=2, policy=FAST)
    assert (got[ISSUED_AT] == fetched).all() and (got[TARGET_TIME] > fetched).all()
    assert got[TARGET_TIME].min() == pd.Timestamp("2024-03-31 12:00", tz="UTC")
    with pytest.raises(ConnectorError, match="time zone"):
        open_meteo.issued_forecast(client, 52.52, 13.41, pd.Timestamp("2024-03-31 11:30"))


def test_a_forecast_file_is_screened_and_every_row_accounted_for(tmp_path: Path) -> None:
    rows = pd.DataFrame(
        {
            SERIES_ID: ["a", "a", "a", "a", "a", "", "b", "b"],
            ISSUED_AT: [f"2024-01-01T0{h}:00Z" for h in (0, 0, 0, 0, 6, 0, 0, 0)],
            TARGET_TIME: [f"2024-01-01T0{h}:00Z" for h in (1, 1, 2, 3, 5, 1, 1, 2)],
            TEMPERATURE: [1.0, 1.5, 120.0, 2.0, 3.0, 4.0, 5.0, None],
            "wind_speed": [3.0] * 8,
        }
    )
    path = tmp_path / "forecasts.csv"
    rows.loc[3, ISSUED_AT] = "bad"
    rows.loc[6, ISSUED_AT] = "2024-01-01T01:00+01:00"  # 00:00 UTC, written with an offset
    rows.to_csv(path, index=False)
    got = weather_forecast.read(path)
    assert got.rows_read == 8
    assert len(got.forecasts) + sum(got.dropped.values()) == 8
    assert got.dropped["without a series_id"] == 1
    assert got.dropped["with an unparseable time"] == 1
    assert got.dropped["without a temperature"] == 1
    assert got.dropped["with a temperature outside -90..60 °C"] == 1
    assert got.dropped["issued at or after their target time"] == 1  # 06:00 for 05:00
    assert got.dropped["repeating an earlier (series, issue, target) row"] == 1
    kept = got.forecasts.set_index(SERIES_ID)
    assert kept.loc["a", TEMPERATURE] == 1.5  # the last of the repeated rows wins
    assert kept.loc["b", ISSUED_AT] == pd.Timestamp("2024-01-01T00:00Z")  # offsets converted to UTC
    assert "wind_speed" in got.forecasts.columns  # other provider variables are kept
    assert "2 of 8 forecast rows kept" in got.summary()

    rows.drop(columns=[ISSUED_AT]).to_csv(path, index=False)
    with pytest.raises(DataSourceError, match="missing: issued_at"):
        weather_forecast.read(path)
    with pytest.raises(DataSourceError, match="not found"):
        weather_forecast.read(tmp_path / "absent.parquet")


def test_backfill_fetches_once_per_location() -> None:
    calls: list[tuple[float, float]] = []

    def fetch(lat: float, lon: float, start: date, end: date) -> pd.DataFrame:
        calls.append((lat, lon))
        return pd.DataFrame(
            {
                ISSUED_AT: [pd.Timestamp("2024-01-01", tz="UTC")],
                TARGET_TIME: [pd.Timestamp("2024-01-02", tz="UTC")],
                TEMPERATURE: [lat / 10],
            }
        )

    cfg = WeatherConfig(provider="open_meteo", default_location="52.5,13.4", locations={"c": "48.1,11.6"})
    got = weather_forecast.backfill(["a", "b", "c"], cfg, date(2024, 1, 1), date(2024, 1, 2), fetch)
    assert calls == [(52.5, 13.4), (48.1, 11.6)]
    assert sorted(got.forecasts[SERIES_ID]) == ["a", "b", "c"] and not any(got.dropped.values())


def test_open_meteo_provider_collects_past_runs_and_the_live_forecast_per_location() -> None:
    """`data.weather_forecast.provider=open_meteo`: one previous-runs and one forecast request per
    location (recorded responses, routed by the documented endpoints), screened, every row kept."""
    from fluxora.config import compose

    archive = json.loads((RECORDED / "open_meteo_archive_berlin.json").read_text())
    previous = json.loads((RECORDED / "open_meteo_previous_runs_berlin.json").read_text())
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = previous if request.url.host == "previous-runs-api.open-meteo.com" else archive
        return httpx.Response(200, json=body)

    cfg = compose(["data.weather_forecast.provider=open_meteo", "data.weather.default_location='52.52,13.41'"])
    stamps = pd.date_range("2024-03-30", periods=48, freq="h", tz="UTC")
    data = pd.DataFrame({SERIES_ID: np.repeat(["a", "b"], 48), "timestamp": np.tile(stamps, 2)})
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        screened = weather_forecast.collect(cfg.data, data, Path("."), client)
    assert screened is not None
    hosts = sorted(r.url.host for r in seen)  # both series share a location: fetched once
    assert hosts == ["api.open-meteo.com", "previous-runs-api.open-meteo.com"]
    got = screened.forecasts
    assert set(got[SERIES_ID]) == {"a", "b"} and sum(screened.dropped.values()) == 0
    assert (got[ISSUED_AT] < got[TARGET_TIME]).all()
    # The past runs are stamped a day or two before their target; the live run by its fetch time.
    lead = (got[TARGET_TIME] - got[ISSUED_AT]).dt.total_seconds() / 3600
    assert {24.0, 48.0} <= set(lead.round(6))


def test_stored_vintages_keep_earlier_live_runs() -> None:
    t = pd.Timestamp("2024-01-01", tz="UTC")
    row = {SERIES_ID: "a", ISSUED_AT: t, TARGET_TIME: t + pd.Timedelta(hours=1), TEMPERATURE: 1.0}
    kept = pd.DataFrame([row])
    new = pd.DataFrame([row | {TEMPERATURE: 2.0}, row | {ISSUED_AT: t + pd.Timedelta(minutes=30)}])
    merged = weather_forecast.merge(kept, new)
    assert len(merged) == 2 and merged[TEMPERATURE].tolist() == [2.0, 1.0]


def test_weather_forecast_settings_are_checked() -> None:
    from fluxora.config import compose
    from fluxora.errors import ConfigError

    data = pd.DataFrame({SERIES_ID: ["a"], "timestamp": [pd.Timestamp("2024-01-01", tz="UTC")]})
    cases = {
        ("data.weather_forecast.provider=dwd",): "known: ",
        ("data.weather_forecast.provider=synthetic", "data.weather_forecast.hours=0"): "hours",
        ("data.weather_forecast.provider=synthetic", "data.weather_forecast.path=x.csv"): "not both",
    }
    for overrides, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            weather_forecast.collect(compose(list(overrides)).data, data, Path("."))
