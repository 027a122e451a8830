"""Hardening (issue 17): series scopes bound what a key can create, list and revoke; timestamps
outside the supported range and non-finite numbers are a 422 on every route that parses a body
(property-based bodies, never a 500); failed logins are throttled per username and per address."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fault_record import FaultRecorder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError
from serving_support import make_key, services, settings_for

from fluxora.api.app import create_app
from fluxora.api.auth import ForbiddenError, Principal
from fluxora.api.ratelimit import LoginThrottle
from fluxora.api.rendering import json_safe, served
from fluxora.api.schemas import MAX_TIMESTAMP, MIN_TIMESTAMP, PredictInstance
from fluxora.config import FluxoraConfig, ServeConfig
from fluxora.paths import Home
from fluxora.servicedb import accounts

SECRET = "hardening-secret-" + "k" * 40
PASSWORD = "correct horse battery"
MINE, OTHER = "series_000", "series_001"
REDIS_ENV = "FLUXORA_TEST_REDIS_URL"


@pytest.fixture(scope="module")
def app(tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """Its own database: the keys made and listed here are the only ones in it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('hardening') / 'api.db'}"
    return create_app(settings_for(tiny_cfg, trained_home, database_url=url, jwt_secret=SecretStr(SECRET)))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"response is not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _features(app: FastAPI) -> dict[str, list[float]]:
    current = services(app).store.current
    assert current is not None
    c = current.forecaster.contract
    return {"load_history": [100.0] * c.load_history_hours, "temp_history": [10.0] * c.temp_history_hours}


def _predict(app: FastAPI, origin: str = "2024-02-01T00:00:00Z", series: str = MINE) -> dict[str, Any]:
    return {"instances": [{"series_id": series, "origin": origin, "features": _features(app)}], "horizon": 6}


# --- item 1: scopes bound everything a key can do or create -------------------------------------


def test_scope_rules() -> None:
    scoped = Principal("key", "key:a", "admin", frozenset({"a", "b"}))
    anyone = Principal("user", "root", "admin")
    assert scoped.grant(None) == ["a", "b"] and scoped.grant(["a"]) == ["a"]
    with pytest.raises(ForbiddenError, match=r"\['c'\] are outside"):
        scoped.grant(["a", "c"])
    assert anyone.grant(None) is None and anyone.grant(["z"]) == ["z"]
    assert scoped.covers(["a"]) and scoped.covers(["a", "b"])
    assert not scoped.covers(None) and not scoped.covers(["a", "c"])
    assert anyone.covers(None) and anyone.covers(["z"])


@pytest.mark.fault
def test_scoped_admin_key_cannot_mint_a_wider_key(
    client: TestClient, app: FastAPI, fault_record: FaultRecorder
) -> None:
    scoped = {"X-API-Key": make_key(app, "admin", series=[MINE])}
    for body in ({"name": "wide"}, {"name": "wide", "series": None}, {"name": "wide", "role": "admin"}):
        r = client.post("/v1/keys", json=body, headers=scoped)
        fault_record.responses(r)
        fault_record(out_of_scope=r.status_code == 201 and r.json()["series"] != [MINE])
        assert r.status_code == 201, r.text
        assert r.json()["series"] == [MINE]  # "all series" from a scoped creator is its own scope
        made = {"X-API-Key": r.json()["key"]}
        other = client.get("/v1/forecast", params={"series_id": OTHER}, headers=made)
        fault_record.responses(other, refused=True)
        assert other.status_code == 403
        assert client.get("/v1/forecast", params={"series_id": MINE}, headers=made).status_code == 200
    for series in ([OTHER], [MINE, OTHER]):
        r = client.post("/v1/keys", json={"name": "wider", "series": series}, headers=scoped)
        fault_record.responses(r, refused=True)
        assert r.status_code == 403, r.text
        assert "within its own series scope" in r.json()["detail"] and OTHER in r.json()["detail"]
    r = client.post("/v1/keys", json={"name": "same", "series": [MINE]}, headers=scoped)
    assert r.status_code == 201 and r.json()["series"] == [MINE]
    # An unscoped admin still makes keys of any scope, unscoped ones included.
    r = client.post("/v1/keys", json={"name": "all"}, headers={"X-API-Key": make_key(app, "admin")})
    assert r.status_code == 201 and r.json()["series"] is None


@pytest.mark.fault
def test_scoped_admin_lists_and_revokes_only_keys_within_its_scope(
    client: TestClient, app: FastAPI, fault_record: FaultRecorder
) -> None:
    own = make_key(app, "admin", series=[MINE], name="own")
    with services(app).sessions() as session:
        inside, inside_key = accounts.create_key(session, "inside", "reader", [MINE])
        unscoped, unscoped_key = accounts.create_key(session, "unscoped", "reader", None)
        other, other_key = accounts.create_key(session, "other", "reader", [OTHER])
        mixed, mixed_key = accounts.create_key(session, "mixed", "reader", [MINE, OTHER])
    headers = {"X-API-Key": own}
    listed = client.get("/v1/keys", headers=headers).json()["keys"]
    ids = {k["id"] for k in listed}
    fault_record(cases=len(listed), out_of_scope=sum(k["series"] != [MINE] for k in listed))
    assert listed and all(k["series"] == [MINE] for k in listed)
    assert inside.id in ids and not {unscoped.id, other.id, mixed.id} & ids
    for row, key in ((unscoped, unscoped_key), (other, other_key), (mixed, mixed_key)):
        r = client.delete(f"/v1/keys/{row.id}", headers=headers)
        fault_record.responses(r, refused=True)
        assert r.status_code == 404, r.text  # as if it did not exist
        assert client.get("/v1/models/current", headers={"X-API-Key": key}).status_code == 200  # still works
    assert client.delete(f"/v1/keys/{inside.id}", headers=headers).status_code == 204
    assert client.get("/v1/models/current", headers={"X-API-Key": inside_key}).status_code == 401
    everything = client.get("/v1/keys", headers={"X-API-Key": make_key(app, "admin")}).json()["keys"]
    assert {unscoped.id, other.id, mixed.id} <= {k["id"] for k in everything}  # an unscoped admin sees all


@pytest.mark.fault
def test_every_series_route_holds_the_scope(client: TestClient, app: FastAPI, fault_record: FaultRecorder) -> None:
    headers = {"X-API-Key": make_key(app, "admin", series=[MINE])}
    refused = [
        client.get("/v1/forecast", params={"series_id": OTHER}, headers=headers),
        client.post("/v1/forecast", json={"series_ids": [MINE, OTHER]}, headers=headers),
        client.post("/v1/predict", json=_predict(app, series=OTHER), headers=headers),
    ]
    fault_record.responses(*refused, refused=True)
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert client.post("/v1/predict", json=_predict(app), headers=headers).status_code == 200
    # The models routes carry no series data: any valid key may read them, scoped or not.
    for path in ("/v1/models/current", "/v1/models/history"):
        assert client.get(path, headers=headers).status_code == 200


# --- item 3: bounded, validated timestamps ------------------------------------------------------


OUT_OF_RANGE = [
    "9999-12-31T00:00:00Z",
    "9999-12-31T23:00:00-05:00",  # overflows Python's datetime when converted to UTC
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+05:00",
    "1600-01-01T00:00:00Z",
    "2300-01-01T00:00:00Z",
    "1899-12-31T23:59:59Z",
    "2200-01-01T00:00:01Z",
    "9999-12-31T00:00:00",  # naive and out of range
]


@pytest.mark.fault
@pytest.mark.parametrize("origin", OUT_OF_RANGE)
def test_predict_origin_outside_the_supported_range_is_422(
    client: TestClient, app: FastAPI, origin: str, fault_record: FaultRecorder
) -> None:
    headers = {"X-API-Key": make_key(app)}
    r = client.post("/v1/predict", json=_predict(app, origin), headers=headers)
    fault_record.responses(r)
    assert r.status_code == 422, r.text
    assert "outside the supported range 1900-01-01T00:00:00Z to 2200-01-01T00:00:00Z" in r.text
    with pytest.raises(ValidationError, match="supported range"):
        PredictInstance.model_validate(_predict(app, origin)["instances"][0])


@pytest.mark.parametrize("origin", [MIN_TIMESTAMP.isoformat(), MAX_TIMESTAMP.isoformat(), "2199-12-31T18:00:00-05:00"])
def test_predict_origins_at_the_range_bounds_are_served_as_given(client: TestClient, app: FastAPI, origin: str) -> None:
    from datetime import UTC, datetime

    r = client.post("/v1/predict", json=_predict(app, origin), headers={"X-API-Key": make_key(app)})
    assert r.status_code == 200, r.text
    served = datetime.fromisoformat(r.json()["forecasts"][0]["origin"].replace("Z", "+00:00"))
    assert served == datetime.fromisoformat(origin).astimezone(UTC)  # never an overflowed origin


# --- item 4: non-finite numbers are a 422, never a 500 ------------------------------------------


def test_json_safe_renders_non_finite_numbers_as_text() -> None:
    nan, inf = float("nan"), float("inf")
    value = {"a": [nan, inf, -inf, 1.5], "b": ({"c": inf},), "d": "x"}
    assert json_safe(value) == {"a": ["NaN", "Infinity", "-Infinity", 1.5], "b": [{"c": "Infinity"}], "d": "x"}


def test_served_rounding_keeps_huge_finite_values_finite() -> None:
    # Found by the property test below: a forecast near the float64 limit overflowed to
    # Infinity when rounded to the served decimals, and its JSON rendering then gave a 500.
    huge = [1.7e308, -1.7e308, 2.0**53 + 2, 1e20]
    assert served(huge) == huge
    assert served([1.23456789, -0.00004, 12345.67891]) == [1.2346, -0.0, 12345.6789]


@pytest.mark.fault
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_literals_are_422_on_every_post_route(
    client: TestClient, app: FastAPI, literal: str, fault_record: FaultRecorder
) -> None:
    headers = {"X-API-Key": make_key(app, "admin"), "Content-Type": "application/json"}
    load = _features(app)["load_history"]
    temp = _features(app)["temp_history"]
    features = f'{{"load_history": [{literal}{", 1.0" * (len(load) - 1)}], "temp_history": {json.dumps(temp)}}}'
    bodies = {
        "/v1/forecast": [
            f'{{"series_ids": ["{MINE}"], "horizon": {literal}}}',
            f'{{"series_ids": ["{MINE}"], "quantiles": [{literal}]}}',
        ],
        "/v1/predict": [
            f'{{"instances": [{{"series_id": "{MINE}", "origin": "2024-02-01T00:00:00Z", "features": {features}}}]}}',
            f'{{"instances": [{{"series_id": "{MINE}", "origin": {literal}, "features": {features}}}]}}',
        ],
        "/v1/keys": [f'{{"name": {literal}}}', f'{{"name": "k", "series": [{literal}]}}', f'{{"role": {literal}}}'],
        "/v1/auth/token": [f'{{"username": {literal}, "password": {literal}}}'],
    }
    for path, texts in bodies.items():
        for text in texts:
            r = client.post(path, content=text, headers=headers)
            fault_record.responses(r)
            assert r.status_code == 422, (path, text, r.status_code, r.text)
            _strict_json(r.text)
    r = client.get("/v1/forecast", params={"series_id": MINE, "quantiles": literal}, headers=headers)
    fault_record.responses(r)
    assert r.status_code == 422 and _strict_json(r.text)


_WEIRD_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63), 1e308, -1e308, 5e-324]),
)
_WEIRD_TIMES = st.sampled_from(
    [*OUT_OF_RANGE, "2024-02-30T00:00:00Z", "2024-02-01T00:00:00+24:00", "", "now", "2024-02-01"]
) | st.datetimes().map(lambda d: d.isoformat())
_WEIRD = st.one_of(
    _WEIRD_NUMBERS,
    _WEIRD_TIMES,
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.lists(_WEIRD_NUMBERS, max_size=5),
    st.dictionaries(st.text(max_size=4), _WEIRD_NUMBERS, max_size=3),
)


def _mutations(app: FastAPI) -> list[tuple[str, dict[str, Any], tuple[Any, ...]]]:
    """(route, a valid body, the place in it a fuzzed value goes)."""
    n = len(_features(app)["load_history"])
    forecast = {"series_ids": [MINE], "horizon": 6, "quantiles": []}
    predict = _predict(app) | {"quantiles": []}
    key = {"name": "fuzzed", "role": "reader", "series": [MINE]}
    inst = ("instances", 0)
    return [
        ("/v1/forecast", forecast, ("horizon",)),
        ("/v1/forecast", forecast, ("quantiles",)),
        ("/v1/forecast", forecast | {"quantiles": [0.5]}, ("quantiles", 0)),
        ("/v1/forecast", forecast, ("series_ids", 0)),
        ("/v1/predict", predict, ("horizon",)),
        ("/v1/predict", predict, ("quantiles",)),
        ("/v1/predict", predict, (*inst, "origin")),
        ("/v1/predict", predict, (*inst, "series_id")),
        ("/v1/predict", predict, (*inst, "features", "load_history")),
        ("/v1/predict", predict, (*inst, "features", "load_history", 0)),
        ("/v1/predict", predict, (*inst, "features", "load_history", n - 1)),
        ("/v1/predict", predict, (*inst, "features", "temp_history", 0)),
        ("/v1/keys", key, ("name",)),
        ("/v1/keys", key, ("role",)),
        ("/v1/keys", key, ("series",)),
        ("/v1/keys", key, ("series", 0)),
        ("/v1/auth/token", {"username": "fuzz", "password": "x" * 8}, ("username",)),
        ("/v1/auth/token", {"username": "fuzz", "password": "x" * 8}, ("password",)),
    ]


def _replace(body: Any, where: tuple[Any, ...], value: Any) -> Any:
    body = json.loads(json.dumps(body))
    target = body
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    return body


@pytest.mark.fault
def test_property_bodies_with_non_finite_and_out_of_range_values_never_500(
    client: TestClient, app: FastAPI, fault_record: FaultRecorder
) -> None:
    headers = {"X-API-Key": make_key(app, "admin", series=[MINE])}
    mutations = _mutations(app)
    seen: dict[int, int] = {}

    @given(choice=st.integers(0, len(mutations) - 1), value=_WEIRD, as_form=st.booleans())
    @settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(choice: int, value: Any, as_form: bool) -> None:
        path, base, where = mutations[choice]
        body = _replace(base, where, value)
        if path == "/v1/auth/token" and as_form:  # the login is a form; every value arrives as text
            r = client.post(path, data={k: json.dumps(v) for k, v in body.items()})
        else:
            text = json.dumps(body, allow_nan=True)  # NaN / Infinity literals, as a client may send them
            r = client.post(path, content=text, headers=headers | {"Content-Type": "application/json"})
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        fault_record.responses(r)
        assert r.status_code < 500, (path, text if not as_form else body, r.status_code, r.text)
        _strict_json(r.text)

    run()
    assert 422 in seen and any(200 <= code < 300 for code in seen), seen


# --- item 8: login throttled per username and per client address --------------------------------


@pytest.fixture
def login_app(tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path) -> FastAPI:
    app = create_app(
        settings_for(
            tiny_cfg,
            trained_home,
            database_url=f"sqlite:///{tmp_path / 'api.db'}",
            login_failures_per_user=3,
            login_failures_per_address=6,
            login_window_s=300,
        )
    )
    return app


def _users(app: FastAPI, *names: str) -> None:
    with services(app).sessions() as session:
        for name in names:
            accounts.create_user(session, name, PASSWORD)


def _login(c: TestClient, username: str, password: str) -> Any:
    return c.post("/v1/auth/token", data={"username": username, "password": password})


def test_failed_logins_are_throttled_per_username(login_app: FastAPI) -> None:
    b = TestClient(login_app, client=("10.0.0.2", 1))  # another address; the lifespan runs once, below
    with TestClient(login_app, client=("10.0.0.1", 1)) as attacker:
        _users(login_app, "victim", "bystander")
        assert [_login(attacker, "victim", f"guess-{i}").status_code for i in range(3)] == [401, 401, 401]
        r = _login(attacker, "victim", "guess-4")
        assert r.status_code == 429, r.text
        assert "too many failed logins for this username" in r.json()["detail"]
        assert 1 <= int(r.headers["Retry-After"]) <= 300
        # The right password is refused too while the username is throttled, from any address.
        assert _login(b, "victim", PASSWORD).status_code == 429
        # Other users are not blocked: not from another address, not from the attacker's.
        assert _login(b, "bystander", PASSWORD).status_code == 200
        assert _login(attacker, "bystander", PASSWORD).status_code == 200
        assert "fluxora_rate_limited_total 2.0" in attacker.get("/metrics").text


def test_failed_logins_are_throttled_per_client_address(login_app: FastAPI) -> None:
    b = TestClient(login_app, client=("10.0.0.4", 1))
    with TestClient(login_app, client=("10.0.0.3", 1)) as attacker:
        _users(login_app, "carol")
        codes = [_login(attacker, f"user-{i}", "wrong-password").status_code for i in range(7)]
        assert codes == [401] * 6 + [429]  # six usernames, two failures short of each one's limit
        r = _login(attacker, "carol", PASSWORD)
        assert r.status_code == 429 and "from this address" in r.json()["detail"]
        assert int(r.headers["Retry-After"]) >= 1
        assert _login(b, "carol", PASSWORD).status_code == 200  # the user is fine from elsewhere


def test_successful_logins_are_not_counted(login_app: FastAPI) -> None:
    with TestClient(login_app) as c:
        _users(login_app, "dave")
        assert all(_login(c, "dave", PASSWORD).status_code == 200 for _ in range(10))


def test_login_limits_are_serve_config_fields() -> None:
    fields = ServeConfig.__dataclass_fields__
    for name in ("login_failures_per_user", "login_failures_per_address", "login_window_s"):
        assert name in fields and fields[name].metadata
    for name in ("default", "production"):
        text = (Path(__file__).parents[2] / "conf" / "serve" / f"{name}.yaml").read_text()
        assert "login_failures_per_user:" in text and "login_window_s:" in text


def test_login_throttle_is_shared_by_workers_through_redis(tiny_cfg: FluxoraConfig, trained_home: Home) -> None:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"Redis tests need {REDIS_ENV} (CI sets redis://127.0.0.1:6379/0)")
    import redis

    settings = settings_for(
        tiny_cfg, trained_home, redis_url=url, login_failures_per_user=2, login_failures_per_address=0
    )
    worker_a, worker_b = create_app(settings), create_app(settings)
    user = f"redis-victim-{uuid.uuid4().hex[:8]}"  # its own counter in the shared Redis
    while time.time() % 300 > 290:  # well inside one fixed window, so all four attempts share it
        time.sleep(1)
    try:
        with TestClient(worker_a) as a, TestClient(worker_b) as b:
            assert _login(a, user, "wrong-1").status_code == 401
            assert _login(b, user, "wrong-2").status_code == 401
            assert _login(a, user, "wrong-3").status_code == 429
            assert _login(b, user, "wrong-4").status_code == 429
    finally:
        r = redis.Redis.from_url(url)
        for key in r.scan_iter(f"fluxora:login:user:{LoginThrottle.user_key(user)}:*"):
            r.delete(key)
