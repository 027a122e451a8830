"""Issue 12: a model trained on issued weather forecasts, served with them (real Feast store,
real MLflow registry, the real app): each forecast names its vintage and the steps that fell
back to persistence, and /metrics counts the fallbacks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_support import make_key, services, settings_for

from conftest import TINY_OVERRIDES
from fluxora.api.app import create_app
from fluxora.api.weather import apply
from fluxora.config import FluxoraConfig, compose
from fluxora.features.names import TEMP_FORECAST, WEATHER_ISSUED_AT, WEATHER_ORIGIN
from fluxora.models.native import WEATHER_ISSUED, WEATHER_PERSISTENCE, Contract
from fluxora.paths import Home

ISSUED = [*TINY_OVERRIDES, "model=ridge", "data.weather_forecast.provider=synthetic"]


@pytest.fixture(scope="module")
def issued_cfg() -> FluxoraConfig:
    return compose(ISSUED)


@pytest.fixture(scope="module")
def issued_home(tmp_path_factory: pytest.TempPathFactory, issued_cfg: FluxoraConfig) -> Home:
    from fluxora import steps
    from fluxora.runtime import prepare

    home = prepare(Home(tmp_path_factory.mktemp("issued-home")))
    for step in (steps.ingest, steps.validate, steps.features, steps.train):
        step(issued_cfg, home)
    return home


@pytest.fixture(scope="module")
def client(
    issued_cfg: FluxoraConfig, issued_home: Home, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("issued-db") / "api.db"
    app = create_app(settings_for(issued_cfg, issued_home, database_url=f"sqlite:///{db}"))
    with TestClient(app) as c:
        c.headers["X-API-Key"] = make_key(app)
        yield c


def test_training_on_issued_forecasts_registers_an_issued_contract(client: TestClient) -> None:
    model = client.get("/v1/models/current").json()
    assert model["contract"]["weather"] == WEATHER_ISSUED
    assert TEMP_FORECAST in model["contract"]["state_features"]


def test_served_forecast_names_its_vintage_and_fallback_steps(client: TestClient) -> None:
    r = client.post("/v1/forecast", json={"series_ids": ["series_000", "series_001"], "horizon": 24})
    assert r.status_code == 200, r.text
    for f in r.json()["forecasts"]:
        issued = datetime.fromisoformat(f["weather_issued_at"].replace("Z", "+00:00"))
        origin = datetime.fromisoformat(f["origin"].replace("Z", "+00:00"))
        # The synthetic runs are six-hourly; the newest one used is at or before the origin.
        assert issued <= origin and (origin - issued).total_seconds() < 6 * 3600 and issued.tzinfo == UTC
        assert f["weather_fallback_steps"] == []  # the 48 h runs cover all 24 steps
    assert "fluxora_weather_fallback_steps_total" not in client.get("/metrics").text.split("# TYPE")[0]


def test_steps_beyond_the_forecast_fall_back_to_persistence_and_are_counted(client: TestClient) -> None:
    # At origin o the newest run was issued at most 5 h before it, covering o+1 .. o+43 at least; the
    # whole contract horizon is inside, so ask /v1/predict with a forecast of only the first 6 hours.
    r = client.get("/v1/forecast", params={"series_id": "series_000", "horizon": 24})
    assert r.status_code == 200, r.text
    before = _counter(client, "fluxora_weather_fallback_steps_total")
    state = _predict_state(client)
    state["features"][TEMP_FORECAST] = state["features"][TEMP_FORECAST][:6]
    r = client.post("/v1/predict", json={"instances": [state], "horizon": 24})
    assert r.status_code == 200, r.text
    f = r.json()["forecasts"][0]
    assert f["weather_fallback_steps"] == list(range(7, 25)) and f["weather_issued_at"] is None
    assert _counter(client, "fluxora_weather_fallback_steps_total") == before + 18


def test_the_forecast_log_records_the_vintage_and_the_fallback_steps(
    issued_cfg: FluxoraConfig, issued_home: Home, tmp_path: Path
) -> None:
    """Each logged forecast keeps what the response said: the vintage it used and how many steps
    fell back (the realized-accuracy split reads these columns)."""
    from sqlalchemy import select

    from fluxora import servicedb
    from fluxora.servicedb.models import ForecastLog

    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(settings_for(issued_cfg, issued_home, database_url=url))
    with TestClient(app) as c:
        c.headers["X-API-Key"] = make_key(app)
        covered = c.get(
            "/v1/forecast", params={"series_id": "series_000", "horizon": 24}, headers={"X-Request-ID": "a"}
        )
        assert covered.status_code == 200, covered.text
        state = _predict_state(c)
        state["features"][TEMP_FORECAST] = state["features"][TEMP_FORECAST][:6]
        short = c.post("/v1/predict", json={"instances": [state], "horizon": 24}, headers={"X-Request-ID": "b"})
        assert short.status_code == 200, short.text
    engine = servicedb.make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(ForecastLog.request_id, ForecastLog.weather_issued_at, ForecastLog.weather_fallback_steps)
        ).all()
    engine.dispose()
    logged = {r[0]: (r[1], r[2]) for r in rows}
    issued = datetime.fromisoformat(covered.json()["weather_issued_at"].replace("Z", "+00:00"))
    assert logged["a"][0] is not None and logged["a"][0].replace(tzinfo=UTC) == issued and logged["a"][1] == 0
    assert logged["b"] == (None, 18)


def test_a_row_for_another_origin_is_not_used() -> None:
    """A series whose forecast went stale keeps an older row in the online store; its hours do
    not line up with the load origin, so every step falls back."""
    contract = Contract("ridge", 3, 168, 24, 15.0, 22.0, "load_forecast_v4", weather=WEATHER_ISSUED)
    origins = np.array(["2024-02-14T23:00", "2024-02-14T23:00"], dtype="datetime64[ns]")
    own = origins[0].astype("datetime64[s]").astype("int64")
    features = {
        TEMP_FORECAST: np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]]),
        WEATHER_ISSUED_AT: np.array([own - 3600.0, own - 7200.0]),
        WEATHER_ORIGIN: np.array([own, own - 3600.0]),
    }
    used = apply(features, origins, contract, 3)
    assert WEATHER_ISSUED_AT not in features and WEATHER_ORIGIN not in features
    assert np.isnan(features[TEMP_FORECAST][1]).all() and features[TEMP_FORECAST][0].tolist() == [1, 2, 3, 4]
    assert used.members[0] == '"weather_issued_at":"2024-02-14T22:00:00Z","weather_fallback_steps":[]'
    assert used.members[1] == '"weather_issued_at":null,"weather_fallback_steps":[1, 2, 3]'
    assert (used.fallback_steps, used.without_forecast) == (3, 1)
    assert used.issued == [datetime(2024, 2, 14, 22, tzinfo=UTC), None] and used.fallbacks == [0, 3]
    persistence = Contract("ridge", 3, 168, 24, 15.0, 22.0, "load_forecast_v4", weather=WEATHER_PERSISTENCE)
    assert apply({}, origins, persistence, 3).members[0] == '"weather_issued_at":null,"weather_fallback_steps":null'


def _predict_state(client: TestClient) -> dict[str, Any]:
    """series_000's latest online state, as a /v1/predict instance (read from the same store)."""
    svc = services(client.app)  # type: ignore[arg-type]
    model = svc.store.current
    assert model is not None
    c = model.forecaster.contract
    states = svc.online.states(["series_000"], c.feature_service, c.state_features)
    origin = str(states.origins[0].astype("datetime64[s]")) + "Z"
    features = {name: np.nan_to_num(v[0], nan=0.0).tolist() for name, v in states.features.items()}
    return {"series_id": "series_000", "origin": origin, "features": features}


def _counter(client: TestClient, name: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_training_read_the_issued_forecasts_through_feast(issued_cfg: FluxoraConfig, issued_home: Home) -> None:
    """The final fit reads its origins point in time through Feast (feature service v4): the
    forecast rows it gets are each origin's own, not an earlier origin's within the TTL."""
    from fluxora.features.store import training_set
    from fluxora.models.panel import batch_from_features
    from fluxora.steps.features import panel

    p = panel(issued_home)
    fc = issued_cfg.features
    origins = p.training_origins(24, 6, fc.load_history_hours, fc.temp_history_hours)
    frames = list(training_set(issued_home, origins, fc.feature_service, fc.series_per_batch))
    batch = batch_from_features(frames[0], p, 24, fc.load_history_hours, fc.temp_history_hours)
    assert batch.issued_temp is not None
    own = np.isfinite(batch.issued_temp).all(axis=1)
    assert own.mean() > 0.9  # every origin after the first run has a fresh forecast
    # ... and they are what the in-memory lookup (backtests) gives for the same origins.
    sid = str(batch.series[0])
    rows = np.flatnonzero((batch.series == sid) & own)
    expected = p.forecasts.at(sid, batch.origins[rows], 24) if p.forecasts else None
    np.testing.assert_allclose(batch.issued_temp[rows], expected, rtol=1e-6)


def test_status_shows_the_latest_vintage_per_series(issued_cfg: FluxoraConfig, issued_home: Home) -> None:
    from fluxora.cli.render import status_text
    from fluxora.status import collect

    report = collect(issued_cfg, issued_home)
    vintages = report["weather_forecast"]
    assert sorted(vintages) == ["series_000", "series_001"]
    online = report["online_store"]
    for sid, issued in vintages.items():  # the last six-hourly run at or before the last load hour
        last_load = datetime.fromisoformat(online[sid])
        assert 0 <= (last_load - datetime.fromisoformat(issued)).total_seconds() < 6 * 3600
    assert "weather       latest issued forecast per series:" in status_text(report)
