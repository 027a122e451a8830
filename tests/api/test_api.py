"""The forecast API end to end: real Feast online store, real MLflow registry, real XGBoost model.

Every expectation is read independently of the service (offline parquet, registry, validated data).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from fault_record import FaultRecorder
from serving_support import key_headers, services, settings_for

from fluxora import registry
from fluxora.api.app import create_app
from fluxora.api.rendering import SERVED_DECIMALS
from fluxora.api.settings import ServiceSettings
from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.schema import LOAD, SERIES_ID, TIMESTAMP
from fluxora.features import store as fs
from fluxora.features.names import EVENT_TIMESTAMP, LOAD_HISTORY, TEMP_HISTORY
from fluxora.models.native import NativeForecaster
from fluxora.paths import Home

# Served values are rounded to SERVED_DECIMALS: equal to the model's within half a unit there.
SERVED_ATOL = 0.5 * 10**-SERVED_DECIMALS + 1e-9
SERIES = "series_000"
FORECAST = "/v1/forecast"


def _fc(
    forecaster: NativeForecaster, load: np.ndarray, temp: np.ndarray, origins: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """(times, point forecasts) through the state-mapping interface."""
    result = forecaster.forecast({LOAD_HISTORY: load, TEMP_HISTORY: temp}, origins, horizon)
    return result.times, result.point


@pytest.fixture(scope="module")
def client(tiny_cfg: FluxoraConfig, trained_home: Home) -> Iterator[TestClient]:
    # The context manager runs the lifespan, which loads the champion; every /v1 call sends a reader key.
    app = create_app(settings_for(tiny_cfg, trained_home))
    with TestClient(app) as c:
        c.headers.update(key_headers(app))
        yield c


@pytest.fixture(scope="module")
def champion_version(tiny_cfg: FluxoraConfig, trained_home: Home) -> str:
    info = registry.champion(trained_home, tiny_cfg.train.registered_model_name)
    assert info is not None, "the tiny pipeline must register a champion"
    return str(info["version"])


@pytest.fixture(scope="module")
def latest_state(trained_home: Home) -> dict[str, Any]:
    """The offline row at the series' latest timestamp: what materialization loaded online."""
    latest = fs.offline_latest(trained_home)
    origin = latest.loc[latest[SERIES_ID] == SERIES, EVENT_TIMESTAMP].item()
    table = pq.read_table(fs.offline_path(trained_home)).to_pandas()
    row = table[(table[SERIES_ID] == SERIES) & (table[EVENT_TIMESTAMP] == origin)]
    assert len(row) == 1
    return {
        "origin": pd.Timestamp(origin).tz_convert("UTC"),
        "load": np.asarray(row[LOAD_HISTORY].iloc[0], dtype="float64"),
        "temp": np.asarray(row[TEMP_HISTORY].iloc[0], dtype="float64"),
    }


@pytest.fixture(scope="module")
def direct_forecaster(champion_dir: Path) -> NativeForecaster:
    """The champion fetched straight from MLflow by alias, not through the service's code."""
    return NativeForecaster.load(champion_dir)


def _get(client: TestClient, **params: object) -> Any:
    return client.get(FORECAST, params=params)


def _values(body: dict[str, Any]) -> np.ndarray:
    return np.array([p["value"] for p in body["points"]], dtype="float64")


def _times(body: dict[str, Any]) -> list[datetime]:
    return [datetime.fromisoformat(p["timestamp"]) for p in body["points"]]


def test_liveness(client: TestClient) -> None:
    r = client.get("/health/live")
    assert r.status_code == 200
    assert r.json() == {"status": "alive"}


def test_ready_reports_champion_version(client: TestClient, champion_version: str) -> None:
    r = client.get("/health/ready")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"
    assert r.json()["model_version"] == champion_version


def test_forecast_shape_origin_and_version(
    client: TestClient, champion_version: str, latest_state: dict[str, Any]
) -> None:
    r = _get(client, series_id=SERIES, horizon=24)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["series_id"] == SERIES
    assert body["horizon"] == 24
    assert body["model_version"] == champion_version
    origin = datetime.fromisoformat(body["origin"])
    assert origin == latest_state["origin"].to_pydatetime()
    times = _times(body)
    assert len(times) == 24
    assert times == [origin + timedelta(hours=k) for k in range(1, 25)]
    assert all(t.utcoffset() == timedelta(0) for t in times)


def test_forecast_values_are_plausible(client: TestClient, trained_home: Home) -> None:
    data = io.read_parquet(trained_home.validated_data)
    recent = data[data[SERIES_ID] == SERIES].sort_values(TIMESTAMP)[LOAD].tail(168).mean()
    values = _values(_get(client, series_id=SERIES, horizon=24).json())
    assert np.isfinite(values).all()
    assert (values > 0).all()
    assert ((values > recent / 3) & (values < recent * 3)).all(), (values, recent)


def test_served_forecast_equals_direct_native_forecast(
    client: TestClient, latest_state: dict[str, Any], direct_forecaster: NativeForecaster
) -> None:
    body = _get(client, series_id=SERIES, horizon=24).json()
    origin = np.array([latest_state["origin"].tz_localize(None).to_datetime64()], dtype="datetime64[ns]")
    times, values = _fc(direct_forecaster, latest_state["load"][None, :], latest_state["temp"][None, :], origin, 24)
    np.testing.assert_allclose(_values(body), values[0], rtol=0, atol=SERVED_ATOL)
    served_times = np.array([np.datetime64(t.replace(tzinfo=None), "ns") for t in _times(body)])
    np.testing.assert_array_equal(served_times, times[0])


@pytest.mark.parametrize("horizon", [1, 12])
def test_shorter_horizon_is_a_prefix_of_the_full_forecast(client: TestClient, horizon: int) -> None:
    # Direct multi-horizon: the row for step k does not depend on how many steps were asked for.
    full = _values(_get(client, series_id=SERIES, horizon=24).json())
    r = _get(client, series_id=SERIES, horizon=horizon)
    assert r.status_code == 200
    assert r.json()["horizon"] == horizon
    np.testing.assert_allclose(_values(r.json()), full[:horizon], rtol=1e-12)


def test_model_max_horizon_works(client: TestClient, tiny_cfg: FluxoraConfig) -> None:
    h = tiny_cfg.train.horizon
    r = _get(client, series_id=SERIES, horizon=h)
    assert r.status_code == 200
    assert len(r.json()["points"]) == h


def test_default_horizon_is_a_day_at_most_the_models(client: TestClient, tiny_cfg: FluxoraConfig) -> None:
    r = _get(client, series_id=SERIES)
    assert r.status_code == 200
    assert r.json()["horizon"] == min(24, tiny_cfg.train.horizon)  # an hourly model: 24 steps
    assert len(r.json()["points"]) == r.json()["horizon"]


@pytest.mark.parametrize("horizon", ["0", "-1", "673", "abc", "1.5", ""])  # 672 steps: a 15-minute week
def test_invalid_horizon_is_422(client: TestClient, horizon: str) -> None:
    r = _get(client, series_id=SERIES, horizon=horizon)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail
    assert any(e["loc"] == ["query", "horizon"] for e in detail)


def test_horizon_beyond_model_contract_is_422(client: TestClient, tiny_cfg: FluxoraConfig) -> None:
    max_h = tiny_cfg.train.horizon
    assert max_h < 168, "this check needs a model trained below the API's absolute cap"
    r = _get(client, series_id=SERIES, horizon=max_h + 1)
    assert r.status_code == 422
    assert str(max_h) in r.json()["detail"]


def test_missing_or_empty_series_id_is_422(client: TestClient) -> None:
    for params in ({}, {"series_id": ""}):
        r = client.get(FORECAST, params=params)
        assert r.status_code == 422
        assert any(e["loc"] == ["query", "series_id"] for e in r.json()["detail"])


def test_unknown_series_is_404(client: TestClient) -> None:
    r = _get(client, series_id="no_such_series", horizon=24)
    assert r.status_code == 404
    assert "no_such_series" in r.json()["detail"]


def test_every_known_series_is_served(client: TestClient, trained_home: Home) -> None:
    latest = fs.offline_latest(trained_home)
    assert len(latest) >= 2
    for sid, origin in zip(latest[SERIES_ID], latest[EVENT_TIMESTAMP], strict=True):
        r = _get(client, series_id=sid, horizon=6)
        assert r.status_code == 200, (sid, r.text)
        assert datetime.fromisoformat(r.json()["origin"]) == pd.Timestamp(origin).to_pydatetime()


def test_service_without_champion_is_alive_but_not_ready(tmp_path: Path) -> None:
    settings = ServiceSettings(
        home=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", retry_after_s=7, poll_interval_s=0
    )
    app = create_app(settings)
    with TestClient(app) as c:
        c.headers.update(key_headers(app))
        assert c.get("/health/live").status_code == 200

        ready = c.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["Retry-After"] == "7"
        assert ready.json()["status"] == "not ready"
        assert ready.json()["model_version"] is None
        assert settings.model_name in ready.json()["detail"]

        r = c.get(FORECAST, params={"series_id": SERIES, "horizon": 24})
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "7"
        assert isinstance(r.json()["detail"], str)
        assert r.json()["detail"]

        for params in ({}, {"series_id": "x", "horizon": "abc"}, {"series_id": "x", "horizon": 0}):
            assert c.get(FORECAST, params=params).status_code != 500


def test_missing_feature_store_is_503_not_500(tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path) -> None:
    # A champion is in the registry, but this home's Feast repo was never applied.
    settings = ServiceSettings(
        home=tmp_path,
        tracking_uri=trained_home.mlflow_tracking_uri,
        model_name=tiny_cfg.train.registered_model_name,
        poll_interval_s=0,
    )
    app = create_app(settings)
    with TestClient(app) as c:
        c.headers.update(key_headers(app))
        assert c.get("/health/ready").status_code == 200
        r = c.get(FORECAST, params={"series_id": SERIES, "horizon": 24})
        assert r.status_code == 503
        assert r.headers["Retry-After"] == str(settings.retry_after_s)
        assert "feature store" in r.json()["detail"]


def test_openapi_documents_forecast(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"][FORECAST]["get"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    name = ok["$ref"].rsplit("/", 1)[-1]
    schema = spec["components"]["schemas"][name]
    assert {"series_id", "model_version", "origin", "horizon", "points"} <= set(schema["properties"])
    assert {"401", "403", "404", "422", "429", "503"} <= set(op["responses"])
    params = {p["name"]: p for p in op["parameters"]}
    assert params["series_id"]["required"] is True
    steps, duration, _left_out = params["horizon"]["schema"]["anyOf"]  # steps, a duration (24h), or left out
    assert steps["minimum"] == 1 and steps["maximum"] == 672 and "pattern" in duration


def test_openapi_documents_forecast_security(client: TestClient) -> None:
    # GET /v1/forecast reads its credentials itself (no Security dependencies): its document
    # must still name both schemes, as the routes that declare them do.
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "description": "an API key from `fluxora keys create`",
        "in": "header",
        "name": "X-API-Key",
    }
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/v1/auth/token"
    both = [{"APIKeyHeader": []}, {"OAuth2PasswordBearer": []}]
    assert spec["paths"][FORECAST]["get"]["security"] == both
    assert spec["paths"][FORECAST]["post"]["security"] == both


def test_forecast_query_errors_are_reported_as_fastapi_does(client: TestClient) -> None:
    r = _get(client, series_id=SERIES, quantiles="abc")
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["query", "quantiles", 0]
    assert error["type"] == "float_parsing"
    r = _get(client, series_id="x" * 201)
    assert r.status_code == 422
    assert [(e["loc"], e["type"]) for e in r.json()["detail"]] == [(["query", "series_id"], "string_too_long")]
    r = client.get(FORECAST, params={"horizon": "0", "quantiles": [0.5] * 21})
    assert r.status_code == 422
    assert [(e["loc"], e["type"]) for e in r.json()["detail"]] == [
        (["query", "series_id"], "missing"),
        (["query", "horizon"], "greater_than_equal"),
        (["query", "quantiles"], "too_long"),
    ]


def test_get_forecast_query_has_the_post_body_limits(client: TestClient) -> None:
    # GET and POST take their limits from the same definitions: a level outside (0, 1) is a
    # query error on GET (it used to reach the model check), as it is a body error on POST.
    for level, kind in ((1.5, "less_than"), (0.0, "greater_than")):
        r = _get(client, series_id=SERIES, quantiles=[level])
        assert r.status_code == 422
        assert [(e["loc"], e["type"]) for e in r.json()["detail"]] == [(["query", "quantiles", 0], kind)]
        assert client.post(FORECAST, json={"series_ids": [SERIES], "quantiles": [level]}).status_code == 422
    spec = client.get("/openapi.json").json()
    query = {p["name"]: p["schema"] for p in spec["paths"][FORECAST]["get"]["parameters"]}
    body = spec["components"]["schemas"]["ForecastRequest"]["properties"]
    # steps (minimum, maximum) or a duration (its pattern); left out: a day ahead, at most the model's horizon
    assert query["horizon"]["anyOf"] == body["horizon"]["anyOf"] and "default" not in query["horizon"]
    [levels, _null] = query["quantiles"]["anyOf"]
    assert levels["maxItems"] == body["quantiles"]["maxItems"]
    assert levels["items"] == body["quantiles"]["items"]


# --- POST /v1/forecast, quantiles, /v1/predict, models ----------------------------------------


def test_post_forecast_equals_get_per_series_in_request_order(client: TestClient) -> None:
    series = ["series_001", SERIES, "series_001"]
    r = client.post(FORECAST, json={"series_ids": series, "horizon": 12})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [f["series_id"] for f in body["forecasts"]] == ["series_001", SERIES]  # duplicates served once
    for f in body["forecasts"]:
        single = _get(client, series_id=f["series_id"], horizon=12).json()
        assert f["model_version"] == body["model_version"] == single["model_version"]
        assert f["origin"] == single["origin"]
        np.testing.assert_allclose(_values(f), _values(single), rtol=1e-12)


@pytest.mark.parametrize(
    "body",
    [
        {"series_ids": []},
        {"series_ids": [""]},
        {"series_ids": ["s"] * 10_001},  # beyond the body's hard limit (the service's: test_many_series.py)
        {"series_ids": ["s"], "horizon": 0},
        {"series_ids": ["s"], "quantiles": [1.5]},
        {"series_ids": ["s"], "unexpected": 1},
        {"series_ids": "series_000"},
    ],
)
def test_post_forecast_rejects_bad_bodies(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post(FORECAST, json=body).status_code == 422


def test_post_forecast_unknown_series_is_404_naming_them(client: TestClient) -> None:
    r = client.post(FORECAST, json={"series_ids": [SERIES, "ghost_1", "ghost_2"]})
    assert r.status_code == 404
    assert "ghost_1" in r.json()["detail"] and "ghost_2" in r.json()["detail"]


def test_quantiles_the_model_lacks_are_a_clear_422(client: TestClient, direct_forecaster: NativeForecaster) -> None:
    offered = list(direct_forecaster.contract.quantiles)
    assert 0.37 not in offered
    for r in (
        _get(client, series_id=SERIES, horizon=6, quantiles=[0.37]),
        client.post(FORECAST, json={"series_ids": [SERIES], "quantiles": [0.37]}),
    ):
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert "quantiles" in detail and "not available" in detail and str(offered[0]) in detail


def test_offered_quantiles_are_served_in_order(client: TestClient, direct_forecaster: NativeForecaster) -> None:
    offered = sorted(direct_forecaster.contract.quantiles)
    assert len(offered) >= 2, "the champion should provide quantiles"
    r = _get(client, series_id=SERIES, horizon=6, quantiles=offered)
    assert r.status_code == 200, r.text
    for point in r.json()["points"]:
        levels = [point["quantiles"][str(q)] for q in offered]
        assert levels == sorted(levels)  # no crossing


def test_feature_freshness_is_reported(client: TestClient, latest_state: dict[str, Any]) -> None:
    body = _get(client, series_id=SERIES).json()
    age = body["feature_age_seconds"]
    expected = (pd.Timestamp.now(tz="UTC") - latest_state["origin"]).total_seconds()
    assert abs(age - expected) < 3600  # same clock reading within an hour: the age is now - origin


# --- responses built as JSON text, the forecast cache ---------------------------------------------


def test_forecast_bodies_are_exactly_their_schemas(client: TestClient, latest_state: dict[str, Any]) -> None:
    """The forecast routes return JSON text built without pydantic; each body must be what the
    documented response model would have produced: same keys, same types, nothing extra."""
    from fluxora.api.schemas import BatchForecastResponse, ForecastResponse

    bodies = [
        (ForecastResponse, _get(client, series_id=SERIES, horizon=6, quantiles=[0.9, 0.1])),
        (BatchForecastResponse, client.post(FORECAST, json={"series_ids": ["series_001", SERIES], "horizon": 3})),
        (BatchForecastResponse, client.post("/v1/predict", json=_predict_body(latest_state, horizon=2))),
    ]
    for schema, r in bodies:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert schema.model_validate_json(r.content).model_dump(mode="json") == r.json()
    single = bodies[0][1].json()
    assert list(single["points"][0]["quantiles"]) == ["0.9", "0.1"]  # in the order asked for
    assert single["feature_age_seconds"] > 0


def test_cached_forecast_follows_the_online_state(
    client: TestClient, direct_forecaster: NativeForecaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repeated request may be answered from the forecast cache, but only while the online
    state is the same: new values or a new origin for the series give a freshly computed forecast."""
    from dataclasses import replace

    from fluxora.api.online import OnlineFeatures, OnlineStates

    svc = client.app.state.services  # type: ignore[attr-defined]
    cache = svc.forecasts
    first = _get(client, series_id=SERIES, horizon=24).json()
    hits = cache.hits
    assert _get(client, series_id=SERIES, horizon=24).json()["points"] == first["points"]
    assert cache.hits == hits + 1

    real = OnlineFeatures.states
    change: dict[str, float] = {}

    def changed(self: OnlineFeatures, *args: Any) -> OnlineStates:
        states = real(self, *args)
        load = states.features[LOAD_HISTORY] * change.get("factor", 1.0)
        origins = states.origins + np.timedelta64(int(change.get("hours", 0)), "h")
        return replace(states, features=states.features | {LOAD_HISTORY: load}, origins=origins)

    monkeypatch.setattr(OnlineFeatures, "states", changed)
    c = direct_forecaster.contract
    for case in ({"factor": 1.5}, {"hours": 1}, {}):
        change.clear()
        change.update(case)
        body = _get(client, series_id=SERIES, horizon=24).json()
        state = changed(svc.online, [SERIES], c.feature_service, c.state_features)
        _, expected = _fc(
            direct_forecaster, state.features[LOAD_HISTORY], state.features[TEMP_HISTORY], state.origins, 24
        )
        np.testing.assert_allclose(_values(body), expected[0], rtol=0, atol=SERVED_ATOL)
        assert (body["points"] == first["points"]) == (not case)  # only the unchanged state gives the same


def test_forecast_cache_off_serves_the_same_numbers(tiny_cfg: FluxoraConfig, trained_home: Home) -> None:
    app = create_app(settings_for(tiny_cfg, trained_home, forecast_cache_entries=0))
    with TestClient(app) as c:
        c.headers.update(key_headers(app))
        bodies = [c.get(FORECAST, params={"series_id": SERIES, "horizon": 12}).json() for _ in range(2)]
        assert len(app.state.services.forecasts) == 0
    assert bodies[0]["points"] == bodies[1]["points"]


def _predict_body(state: dict[str, Any], horizon: int = 24, **instance: Any) -> dict[str, Any]:
    inst = {
        "series_id": "my-feeder",
        "origin": state["origin"].isoformat(),
        "features": {LOAD_HISTORY: state["load"].tolist(), TEMP_HISTORY: state["temp"].tolist()},
    } | instance
    return {"instances": [inst], "horizon": horizon}


def test_predict_with_caller_features_equals_online_forecast(
    client: TestClient, latest_state: dict[str, Any], champion_version: str
) -> None:
    r = client.post("/v1/predict", json=_predict_body(latest_state))
    assert r.status_code == 200, r.text
    (f,) = r.json()["forecasts"]
    online = _get(client, series_id=SERIES, horizon=24).json()
    assert f["series_id"] == "my-feeder" and f["model_version"] == champion_version
    assert f["origin"] == online["origin"] and f["feature_age_seconds"] is None
    np.testing.assert_allclose(_values(f), _values(online), rtol=1e-6)


def test_predict_uses_the_callers_weather(client: TestClient, latest_state: dict[str, Any]) -> None:
    warmer = latest_state | {"temp": latest_state["temp"] + 15.0}
    base = _values(client.post("/v1/predict", json=_predict_body(latest_state)).json()["forecasts"][0])
    hot = _values(client.post("/v1/predict", json=_predict_body(warmer)).json()["forecasts"][0])
    assert not np.allclose(base, hot)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": {LOAD_HISTORY: [1.0] * 5, TEMP_HISTORY: [1.0] * 24}}, "needs"),
        ({"features": {TEMP_HISTORY: [1.0] * 24}}, "lacks"),
        ({"origin": "2024-02-01T00:00:00"}, "timezone"),
    ],
)
def test_predict_rejects_features_that_break_the_contract(
    client: TestClient, latest_state: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    r = client.post("/v1/predict", json=_predict_body(latest_state, **change))
    assert r.status_code == 422
    assert message in r.json()["detail"]


def test_predict_rejects_unknown_features_and_survives_extremes(
    client: TestClient, latest_state: dict[str, Any]
) -> None:
    extra = _predict_body(latest_state)
    extra["instances"][0]["features"]["holiday"] = [1.0]
    assert client.post("/v1/predict", json=extra).status_code == 422
    for value in (1e308, -1e308, 0.0):  # extreme but finite inputs: a finite forecast or a clear 422, never 500
        extreme = latest_state | {"load": np.full_like(latest_state["load"], value)}
        r = client.post("/v1/predict", json=_predict_body(extreme))
        assert r.status_code in (200, 422), r.text
        if r.status_code == 200:
            assert np.isfinite(_values(r.json()["forecasts"][0])).all()
        else:
            assert "non-finite" in r.json()["detail"]


def test_models_current_and_history(
    client: TestClient, champion_version: str, tiny_cfg: FluxoraConfig, direct_forecaster: NativeForecaster
) -> None:
    cur = client.get("/v1/models/current")
    assert cur.status_code == 200
    body = cur.json()
    assert body["version"] == champion_version and body["source"] == "registry"
    assert body["name"] == tiny_cfg.train.registered_model_name
    assert body["contract"]["horizon"] == tiny_cfg.train.horizon
    assert body["contract"]["history_hours"] == {
        LOAD_HISTORY: tiny_cfg.features.load_history_hours,
        TEMP_HISTORY: tiny_cfg.features.temp_history_hours,
    }
    assert body["contract"]["quantiles"] == list(direct_forecaster.contract.quantiles)
    assert body["reason"]  # the registry's promotion note
    events = client.get("/v1/models/history").json()["events"]
    # The history is the shared database's: other apps on this home served before and since this one.
    assert events and all((e["version"], e["event"]) == (champion_version, "served") for e in events)
    times = [datetime.fromisoformat(e["at"]) for e in events]
    assert times == sorted(times)  # oldest first
    mine = services(client.app).store.history  # type: ignore[arg-type]
    assert [(e.version, e.event) for e in mine] == [(champion_version, "served")]
    reported = [e for e, at in zip(events, times, strict=True) if at == mine[0].at]
    assert [(e["source"], e["reason"], e["instance"]) for e in reported] == [
        ("registry", body["reason"], mine[0].instance)
    ]


def test_model_history_survives_a_restart(tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path) -> None:
    """Two runs of the service on one database: the second reports the first run's event too."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    first = create_app(settings_for(tiny_cfg, trained_home, database_url=url))
    with TestClient(first) as c:
        before = c.get("/v1/models/history", headers=key_headers(first)).json()["events"]
    second = create_app(settings_for(tiny_cfg, trained_home, database_url=url))
    with TestClient(second) as c:
        r = c.get("/v1/models/history", headers=key_headers(second))
    assert r.status_code == 200
    after = r.json()["events"]
    assert len(before) == 1 and len(after) == 2
    assert after[0] == before[0]  # the first run's event, as it reported it
    assert [e["event"] for e in after] == ["served", "served"]
    assert datetime.fromisoformat(after[0]["at"]) < datetime.fromisoformat(after[1]["at"])  # oldest first
    assert services(second).store.history[0].at == datetime.fromisoformat(after[1]["at"])
    assert all(e["instance"] for e in after)  # one test process: the same host:pid both times


@pytest.mark.fault
def test_model_history_database_failure_is_503(
    tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path, fault_record: FaultRecorder
) -> None:
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(settings_for(tiny_cfg, trained_home, database_url=url))
    with TestClient(app) as c:
        headers = key_headers(app)
        with services(app).engine.begin() as conn:
            conn.execute(text("DROP TABLE model_events"))  # a real failure: the table is gone
        r = c.get("/v1/models/history", headers=headers)
        fault_record.responses(r)
        assert r.status_code == 503
        assert "model history is unavailable" in r.json()["detail"]
        assert r.headers["Retry-After"]
        served = c.get(FORECAST, params={"series_id": SERIES, "horizon": 3}, headers=headers)
        fault_record.responses(served)
        assert served.status_code == 200


@pytest.mark.fault
def test_forecast_log_is_complete_after_clean_shutdown(
    tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path, champion_version: str, fault_record: FaultRecorder
) -> None:
    from sqlalchemy import select

    from fluxora import servicedb as db
    from fluxora.servicedb.models import ForecastLog

    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(settings_for(tiny_cfg, trained_home, database_url=url, log_flush_s=60.0))
    with TestClient(app) as c:
        headers = key_headers(app)
        single = c.get(FORECAST, params={"series_id": SERIES, "horizon": 5}, headers=headers | {"X-Request-ID": "r1"})
        repeat = c.get(FORECAST, params={"series_id": SERIES, "horizon": 5}, headers=headers | {"X-Request-ID": "r2"})
        batch = c.post(FORECAST, json={"series_ids": [SERIES, "series_001"], "horizon": 3}, headers=headers)
        assert single.status_code == repeat.status_code == batch.status_code == 200
    # The flush interval is a minute: only the shutdown drain can have written these rows.
    engine = db.make_engine(url)
    with db.sessions(engine)() as s:
        rows = list(s.scalars(select(ForecastLog).order_by(ForecastLog.id)))
    engine.dispose()
    fault_record(rows_lost_clean=max(0, 4 - len(rows)))  # four forecasts served: two GETs, a POST of two
    assert [(r.series_id, r.horizon, r.endpoint) for r in rows] == [
        (SERIES, 5, "get_forecast"),
        (SERIES, 5, "get_forecast"),  # answered from the forecast cache, logged all the same
        (SERIES, 3, "post_forecast"),
        ("series_001", 3, "post_forecast"),
    ]
    assert rows[0].values == pytest.approx(_values(single.json()).tolist())
    assert rows[1].values == rows[0].values
    assert [r.request_id for r in rows[:2]] == ["r1", "r2"]
    assert all(r.model_version == champion_version and r.consumer.startswith("key:") for r in rows)
    # A model that reads no weather forecast logs no vintage and no fallback count (issue 12).
    assert all(r.weather_issued_at is None and r.weather_fallback_steps is None for r in rows)


def test_service_imports_no_training_prefect_or_evidently(tiny_cfg: FluxoraConfig, trained_home: Home) -> None:
    """Start the app and serve a forecast in a fresh interpreter, then list what got imported."""
    import json
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import json, sys
        from fastapi.testclient import TestClient
        from fluxora.servicedb import accounts
        from fluxora.api.app import create_app
        from fluxora.api.settings import ServiceSettings
        s = ServiceSettings(home={str(trained_home.root)!r}, tracking_uri={trained_home.mlflow_tracking_uri!r},
                            model_name={tiny_cfg.train.registered_model_name!r}, poll_interval_s=0)
        app = create_app(s)
        with TestClient(app) as c:
            with app.state.services.sessions() as session:
                _, key = accounts.create_key(session, "import-check")
            r = c.get("/v1/forecast", params={{"series_id": "series_000"}}, headers={{"X-API-Key": key}})
        print(json.dumps({{"status": r.status_code, "modules": sorted(sys.modules)}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    modules = set(result["modules"])
    banned_modules = ("prefect", "evidently", "fluxora.models.train", "sklearn", "prophet", "fluxora.steps")
    for banned in (*banned_modules, "fluxora.models.neural", "tensorflow", "keras"):
        assert banned not in modules, banned


# --- the OpenAPI contract, fuzzed (schemathesis) -------------------------------------------------

ADMIN_PASSWORD = "schemathesis-admin-pw"


@pytest.fixture(scope="module")
def fuzz_app(tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real app with its own database (fuzzed key creation and revocation stay in it)."""
    from fluxora.servicedb import accounts

    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'api.db'}"
    app = create_app(settings_for(tiny_cfg, trained_home, database_url=url))
    with TestClient(app):  # runs the lifespan: database migrated, champion loaded
        with app.state.services.sessions() as session:
            accounts.create_user(session, "fuzz-admin", ADMIN_PASSWORD, "admin")
        yield app


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Any) -> Any:
    import schemathesis

    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


@pytest.fixture(scope="module")
def admin_token(fuzz_app: Any) -> dict[str, str]:
    # A JWT, not a key: fuzzed DELETE /v1/keys/{id} calls cannot revoke it mid-run.
    with TestClient(fuzz_app) as c:
        r = c.post("/v1/auth/token", data={"username": "fuzz-admin", "password": ADMIN_PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _fuzz_checks(record: FaultRecorder) -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    def recorded(ctx: Any, response: Any, case: Any) -> None:  # every response, before the others judge it
        record.responses(response)

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    return [recorded, *checks]


def _fuzz(schema: Any, headers: dict[str, str] | None, record: FaultRecorder) -> list[tuple[str, str, int]]:
    """Every operation, `FUZZ_EXAMPLES` generated cases each; returns (method, path, status) seen."""
    seen: list[tuple[str, str, int]] = []
    for result in schema.get_all_operations():
        _fuzz_operation(result.ok(), headers, seen, record)
    return seen


def _fuzz_operation(
    operation: Any, headers: dict[str, str] | None, seen: list[tuple[str, str, int]], record: FaultRecorder
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    strategy = operation.as_strategy()

    @given(data=st.data())
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(data: Any) -> None:
        case = data.draw(strategy)
        response = case.call_and_validate(headers=headers, checks=_fuzz_checks(record))
        seen.append((case.method, operation.path, response.status_code))

    run()


FUZZ_EXAMPLES = 15  # per operation: bounded, so the run takes tens of seconds, not minutes


@pytest.mark.fault
def test_openapi_fuzz_authenticated(api_schema: Any, admin_token: dict[str, str], fault_record: FaultRecorder) -> None:
    seen = _fuzz(api_schema, admin_token, fault_record)
    operations = {(m, p) for m, p, _ in seen}
    assert len(operations) >= 10  # every documented operation was exercised
    assert any(p == "/v1/keys" and 200 <= code < 300 for _, p, code in seen)  # the admin credentials worked


@pytest.mark.fault
def test_openapi_fuzz_anonymous(api_schema: Any, fault_record: FaultRecorder) -> None:
    seen = _fuzz(api_schema, None, fault_record)
    protected = [code for _, path, code in seen if path.startswith("/v1") and path != "/v1/auth/token"]
    fault_record(out_of_scope=sum(200 <= code < 300 for code in protected))
    for method, path, code in seen:
        if path.startswith("/v1") and path != "/v1/auth/token":
            assert code in (401, 413, 422), (method, path, code)  # never served without credentials


def test_service_sets_process_tuning_while_any_app_runs(tiny_cfg: FluxoraConfig, trained_home: Home) -> None:
    """The GIL switch interval and the frozen start-up objects last while at least one service
    runs in the process (here two, overlapping), and are put back when the last one stops.

    Other apps may be running in this process already (this module's `client` fixture keeps one
    open): then the tuning must outlast both of ours. The frozen count is compared as "still
    frozen", not to the exact number: frozen objects that are freed leave the permanent
    generation, so the count shrinks on its own while apps come and go."""
    import gc
    import sys

    from fluxora.api.app import GIL_SWITCH_INTERVAL_S, PROCESS_TUNING

    switch, frozen = sys.getswitchinterval(), gc.get_freeze_count()
    others = PROCESS_TUNING._running  # services other tests keep running in this process
    first = TestClient(create_app(settings_for(tiny_cfg, trained_home)))
    second = TestClient(create_app(settings_for(tiny_cfg, trained_home)))
    with first:
        assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_S
        assert gc.get_freeze_count() > 0
        second.__enter__()
    assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_S  # the second still runs
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert PROCESS_TUNING._running == others
    if others:  # another service still runs: its tuning stays
        assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_S and gc.get_freeze_count() > 0
    else:  # the last one stopped: as before (unfrozen, if ours froze)
        assert sys.getswitchinterval() == switch
        assert gc.get_freeze_count() == 0 if frozen == 0 else gc.get_freeze_count() <= frozen
