"""Issue 12: the weather-forecast flow as real Prefect flow runs on a real Feast store: it stores
and versions the vintages, accounts for every row, and the online store (read as the service
reads it) serves the new vintage without retraining."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import TINY_OVERRIDES
from fluxora.paths import Home

SYNTHETIC = [*TINY_OVERRIDES, "data.weather_forecast.provider=synthetic"]


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Home]:
    """Load data ingested and its features built (no weather source yet), as the ingest flow leaves it."""
    from fluxora import steps
    from fluxora.config import compose
    from fluxora.runtime import prepare

    mp = pytest.MonkeyPatch()
    home = prepare(Home(tmp_path_factory.mktemp("weather-home")))
    mp.setenv("FLUXORA_HOME", str(home.root))
    cfg = compose(TINY_OVERRIDES)
    for step in (steps.ingest, steps.validate, steps.features):
        step(cfg, home)
    yield home
    mp.undo()


def _run(overrides: list[str]) -> dict[str, Any]:
    from flows.pipeline import weather_flow

    state = weather_flow(overrides=overrides, return_state=True)
    assert state.is_completed(), state
    return state.result().outputs()["weather"]


def _served_issued_at(home: Home, series_id: str) -> datetime | None:
    """`weather_issued_at` of a series' state, through the reader the service uses."""
    from fluxora.api.online import OnlineFeatures
    from fluxora.config import compose
    from fluxora.features.names import LOAD_HISTORY, TEMP_FORECAST, WEATHER_ISSUED_AT, WEATHER_ORIGIN

    service = compose(TINY_OVERRIDES).features.feature_service
    states = OnlineFeatures(home).states(
        [series_id], service, (LOAD_HISTORY, TEMP_FORECAST, WEATHER_ISSUED_AT, WEATHER_ORIGIN)
    )
    seconds = float(states.features[WEATHER_ISSUED_AT][0])
    return None if seconds != seconds else datetime.fromtimestamp(seconds, UTC)


@pytest.mark.integration
def test_nothing_configured_says_so_and_succeeds(prefect_harness: None, tmp_path: Path) -> None:
    from fluxora.steps.weather import NOT_CONFIGURED

    mp = pytest.MonkeyPatch()
    mp.setenv("FLUXORA_HOME", str(tmp_path / "empty-home"))
    try:
        out = _run(list(TINY_OVERRIDES))
    finally:
        mp.undo()
    assert out["configured"] is False
    assert out["message"] == NOT_CONFIGURED
    assert not (tmp_path / "empty-home" / "data" / "weather_forecasts.parquet").exists()


@pytest.fixture(scope="module")
def synthetic_run(ingested: Home) -> dict[str, Any]:
    return _run(SYNTHETIC)


@pytest.mark.integration
def test_synthetic_run_stores_vintages_and_accounts_for_every_row(ingested: Home, synthetic_run: dict) -> None:
    from fluxora.steps.weather import versions

    out = synthetic_run
    assert out["configured"] and out["changed"] and out["previous_version"] == ""
    stored = pd.read_parquet(ingested.weather_forecasts)
    assert len(stored) == out["rows_stored"] > 0
    assert stored[["series_id", "issued_at"]].drop_duplicates().shape[0] == out["vintages"] > 1
    report = json.loads(Path(out["report"]).read_text())
    assert report["accounted"] is True
    assert report["rows_in"] == report["rows_out"] + sum(report["dropped"].values())
    assert report["data_version"] == out["data_version"] and len(out["data_version"]) == 32
    assert (ingested.reports / "weather_validation.txt").read_text().startswith("weather forecast validation")
    assert [v["data_version"] for v in versions(ingested)] == [out["data_version"]]
    served = _served_issued_at(ingested, "series_000")
    assert served is not None
    assert served.strftime("%Y-%m-%dT%H:%M:%SZ") == out["latest_issued"]["series_000"]


@pytest.mark.integration
def test_same_vintages_keep_their_version(ingested: Home, synthetic_run: dict) -> None:
    from fluxora.steps.weather import versions

    again = _run(SYNTHETIC)
    assert again["changed"] is False
    assert again["data_version"] == again["previous_version"] == synthetic_run["data_version"]
    assert len(versions(ingested)) == 1


@pytest.mark.integration
def test_file_with_bad_rows_reports_each_and_serves_the_new_vintage(
    ingested: Home, synthetic_run: dict, tmp_path: Path
) -> None:
    from fluxora.steps.weather import versions

    stored = pd.read_parquet(ingested.weather_forecasts)
    last = pd.Timestamp(synthetic_run["latest_issued"]["series_000"])
    newer = last + pd.Timedelta(hours=1)  # a run issued after every stored one
    fresh = pd.DataFrame(
        {
            "series_id": "series_000",
            "issued_at": newer,
            "target_time": newer + pd.to_timedelta(range(1, 49), unit="h"),
            "temperature": 12.5,
        }
    )
    bad = pd.DataFrame(
        {
            "series_id": ["series_001", "series_001", "series_000"],
            "issued_at": [newer, newer, newer],
            "target_time": [newer - pd.Timedelta(hours=2), newer + pd.Timedelta(hours=3), newer],
            "temperature": [10.0, 99.0, 10.0],
        }
    )
    duplicate = fresh.iloc[[5]].assign(temperature=0.0)  # repeats a key: the later row wins
    feed = pd.concat([stored, fresh, bad, duplicate], ignore_index=True)
    path = tmp_path / "feed.csv"
    feed.to_csv(path, index=False)

    out = _run([*TINY_OVERRIDES, f"data.weather_forecast.path={path}"])
    report = json.loads(Path(out["report"]).read_text())
    assert report["rows_in"] == len(feed)
    dropped = {why: n for why, n in report["dropped"].items() if n}
    assert dropped == {
        "with a temperature outside -90..60 °C": 1,
        "issued at or after their target time": 2,
        "repeating an earlier (series, issue, target) row": 1,
    }
    assert report["rows_out"] == len(stored) + len(fresh) == out["rows_stored"]
    assert report["accounted"] is True
    assert out["changed"] is True and out["previous_version"] == synthetic_run["data_version"]
    assert [v["data_version"] for v in versions(ingested)] == [synthetic_run["data_version"], out["data_version"]]
    assert out["latest_issued"]["series_000"] == newer.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _served_issued_at(ingested, "series_000") == newer.to_pydatetime()
    kept = pd.read_parquet(ingested.weather_forecasts)
    row = kept[(kept["issued_at"] == newer) & (kept["target_time"] == fresh["target_time"].iloc[5])]
    assert row["temperature"].tolist() == [0.0]


def test_weather_deployment_is_built_with_its_cron() -> None:
    from flows.deployments import DEPLOYMENTS, build
    from fluxora.config import compose

    cfg = compose([*TINY_OVERRIDES, "deploy.timezone=Europe/Berlin"])
    built = {f"{d.flow_name}/{d.name}": d for d in build(cfg, ["data.weather_forecast.provider=synthetic"])}
    weather = built[DEPLOYMENTS["weather"]]
    assert DEPLOYMENTS["weather"] == "fluxora-weather/after-model-runs"
    (schedule,) = weather.schedules
    assert schedule.schedule.cron == cfg.deploy.weather_cron == "20 5,11,17,23 * * *"
    assert schedule.schedule.timezone == "Europe/Berlin"
    assert weather.tags == ["fluxora", "weather"] and "without retraining" in (weather.description or "")
    assert weather.parameters == {"overrides": ["data.weather_forecast.provider=synthetic"]}
    assert list(weather._parameter_openapi_schema.properties) == ["overrides"]


def test_gaps_are_counted_inside_each_run() -> None:
    from fluxora.steps.weather import count_gaps

    t0 = pd.Timestamp("2024-01-01T00:00Z")
    hours = [1, 2, 5, 6]  # 3 and 4 missing in the first run
    frame = pd.DataFrame(
        {
            "series_id": ["a"] * 4 + ["b"] * 2,
            "issued_at": [t0] * 4 + [t0 + pd.Timedelta(hours=6)] * 2,
            "target_time": [t0 + pd.Timedelta(hours=h) for h in hours]
            + [t0 + pd.Timedelta(hours=7), t0 + pd.Timedelta(hours=8)],
            "temperature": 1.0,
        }
    )
    assert count_gaps(frame) == 2
    assert count_gaps(frame.iloc[:0]) == 0


def test_artifact_lists_drops_by_reason_and_latest_issue_per_series() -> None:
    from flows.artifacts import weather_markdown
    from fluxora.steps import WeatherResult

    text = weather_markdown(
        WeatherResult(
            configured=True,
            rows_in=10,
            rows_out=7,
            dropped={"issued at or after their target time": 2, "without a temperature": 1},
            data_version="abc",
            changed=True,
            latest_issued={"series_000": "2024-01-01T06:00:00Z"},
        )
    )
    assert "| dropped: issued at or after their target time | 2 |" in text
    assert "| series_000 | 2024-01-01T06:00:00Z |" in text and "abc (new)" in text
    assert "nothing to do" in weather_markdown(WeatherResult(configured=False, message="nothing to do"))
