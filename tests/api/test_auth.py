"""Authentication and authorization: every protected route × every kind of bad credential.

Tokens for the attacks are forged here with PyJWT directly (not with the service's code), the
keys and users live in the service's real database.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fault_record import FaultRecorder
from pydantic import SecretStr
from serving_support import make_key, services, settings_for

from fluxora import cli
from fluxora.api.app import create_app
from fluxora.api.settings import ServiceSettings
from fluxora.config import FluxoraConfig
from fluxora.errors import ConfigError
from fluxora.paths import Home
from fluxora.servicedb import accounts

SECRET = "s3cret-for-tests-" + "x" * 40
AUDIENCE = "fluxora-api"
PASSWORD = "correct horse battery"
SERIES = "series_000"

# (method, path, needs admin). The test below fails when a /v1 route is added without a row here.
PROTECTED: list[tuple[str, str, bool]] = [
    ("GET", "/v1/forecast", False),
    ("GET", "/v1/forecast/plot", False),
    ("POST", "/v1/forecast", False),
    ("POST", "/v1/predict", False),
    ("GET", "/v1/models/current", False),
    ("GET", "/v1/models/history", False),
    ("POST", "/v1/keys", True),
    ("GET", "/v1/keys", True),
    ("DELETE", "/v1/keys/{key_id}", True),
]
OPEN_V1 = {("POST", "/v1/auth/token")}  # the login itself


@pytest.fixture(scope="module")
def app(tiny_cfg: FluxoraConfig, trained_home: Home) -> FastAPI:
    return create_app(settings_for(tiny_cfg, trained_home, jwt_secret=SecretStr(SECRET), jwt_audience=AUDIENCE))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def users(app: FastAPI, client: TestClient) -> dict[str, str]:
    names = {}
    with services(app).sessions() as session:
        for role in ("reader", "admin"):
            name = f"{role}-{id(app)}"
            accounts.create_user(session, name, PASSWORD, role)
            names[role] = name
    return names


def _token(**claims: Any) -> str:
    now = datetime.now(UTC)
    base = {"sub": "someone", "role": "admin", "aud": AUDIENCE, "iat": now, "exp": now + timedelta(minutes=5)}
    return jwt.encode({**base, **claims}, SECRET, algorithm="HS256")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none() -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "someone", "role": "admin", "aud": AUDIENCE, "iat": now, "exp": now + 300}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _without(claim: str) -> str:
    now = datetime.now(UTC)
    claims = {"sub": "someone", "role": "admin", "aud": AUDIENCE, "iat": now, "exp": now + timedelta(minutes=5)}
    del claims[claim]
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _request(client: TestClient, app: FastAPI, method: str, path: str, headers: dict[str, str]) -> Any:
    """A well-formed request for the route, so only the credentials can make it fail."""
    if method == "GET" and path in ("/v1/forecast", "/v1/forecast/plot"):
        return client.get(path, params={"series_id": SERIES, "horizon": 6}, headers=headers)
    if method == "POST" and path == "/v1/forecast":
        return client.post(path, json={"series_ids": [SERIES], "horizon": 6}, headers=headers)
    if path == "/v1/predict":
        c = services(app).store.current
        assert c is not None
        contract = c.forecaster.contract
        features = {"load_history": [100.0] * contract.load_history_hours}
        features["temp_history"] = [10.0] * contract.temp_history_hours
        body = {"instances": [{"series_id": SERIES, "origin": "2024-02-01T00:00:00Z", "features": features}]}
        return client.post(path, json=body | {"horizon": 6}, headers=headers)
    if method == "POST" and path == "/v1/keys":
        return client.post(path, json={"name": "made-by-test"}, headers=headers)
    if method == "DELETE":
        victim = _key_id(app)
        return client.delete(path.format(key_id=victim), headers=headers)
    return client.request(method, path, headers=headers)


def _key_id(app: FastAPI) -> int:
    with services(app).sessions() as session:
        row, _ = accounts.create_key(session, "victim")
        return row.id


@pytest.mark.fault
def test_the_matrix_covers_every_v1_route(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() if p.startswith("/v1") for m in ops}
    assert routes == {(m, p) for m, p, _ in PROTECTED} | OPEN_V1


BAD_CREDENTIALS: dict[str, Callable[[FastAPI], dict[str, str]]] = {
    "no credentials": lambda app: {},
    "empty bearer": lambda app: {"Authorization": "Bearer "},
    "malformed token": lambda app: {"Authorization": "Bearer not.a.jwt"},
    "garbage token": lambda app: {"Authorization": "Bearer abc"},
    "basic scheme": lambda app: {"Authorization": "Basic YWRtaW46YWRtaW4="},
    "alg none": lambda app: {"Authorization": f"Bearer {_alg_none()}"},
    "wrong signature": lambda app: {
        "Authorization": "Bearer " + jwt.encode({"sub": "x", "role": "admin", "aud": AUDIENCE}, "y" * 40)
    },
    "signed with another secret, all claims": lambda app: {
        "Authorization": "Bearer "
        + jwt.encode(
            {
                "sub": "x",
                "role": "admin",
                "aud": AUDIENCE,
                "iat": datetime.now(UTC),
                "exp": datetime.now(UTC) + timedelta(minutes=5),
            },
            "z" * 48,
            algorithm="HS256",
        )
    },
    "HS512 with the right secret": lambda app: {
        "Authorization": "Bearer "
        + jwt.encode(
            {
                "sub": "x",
                "role": "admin",
                "aud": AUDIENCE,
                "iat": datetime.now(UTC),
                "exp": datetime.now(UTC) + timedelta(minutes=5),
            },
            SECRET,
            algorithm="HS512",
        )
    },
    "expired": lambda app: {"Authorization": f"Bearer {_token(exp=datetime.now(UTC) - timedelta(seconds=5))}"},
    "wrong audience": lambda app: {"Authorization": f"Bearer {_token(aud='someone-else')}"},
    "no audience": lambda app: {"Authorization": f"Bearer {_without('aud')}"},
    "no expiry": lambda app: {"Authorization": f"Bearer {_without('exp')}"},
    "no issued-at": lambda app: {"Authorization": f"Bearer {_without('iat')}"},
    "unknown role claim": lambda app: {"Authorization": f"Bearer {_token(role='superuser')}"},
    "malformed key": lambda app: {"X-API-Key": "not-a-key"},
    "unknown key": lambda app: {"X-API-Key": "flx_000000000000_" + "A" * 43},
    "right prefix, wrong secret": lambda app: {"X-API-Key": make_key(app, "admin").rsplit("_", 1)[0] + "_" + "B" * 43},
    "revoked key": lambda app: {"X-API-Key": _revoked(app)},
}


def _revoked(app: FastAPI) -> str:
    key = make_key(app, "admin")
    prefix = key.split("_")[1]
    with services(app).sessions() as session:
        from sqlalchemy import select

        from fluxora.servicedb.models import ApiKey

        row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        assert row is not None
        assert accounts.revoke_key(session, row.id) is not None
    return key


@pytest.mark.fault
@pytest.mark.parametrize("credential", list(BAD_CREDENTIALS))
@pytest.mark.parametrize(("method", "path", "_admin"), PROTECTED)
def test_bad_credentials_are_401(
    client: TestClient,
    app: FastAPI,
    method: str,
    path: str,
    _admin: bool,
    credential: str,
    fault_record: FaultRecorder,
) -> None:
    r = _request(client, app, method, path, BAD_CREDENTIALS[credential](app))
    fault_record.responses(r, refused=True)
    assert r.status_code == 401, (credential, r.status_code, r.text)
    assert "WWW-Authenticate" in r.headers
    assert isinstance(r.json()["detail"], str)


@pytest.mark.fault
@pytest.mark.parametrize(("method", "path", "admin"), PROTECTED)
def test_reader_is_403_on_admin_routes_and_allowed_elsewhere(
    client: TestClient,
    app: FastAPI,
    users: dict[str, str],
    method: str,
    path: str,
    admin: bool,
    fault_record: FaultRecorder,
) -> None:
    token = client.post("/v1/auth/token", data={"username": users["reader"], "password": PASSWORD}).json()
    for headers in ({"X-API-Key": make_key(app, "reader")}, {"Authorization": f"Bearer {token['access_token']}"}):
        r = _request(client, app, method, path, headers)
        fault_record.responses(r, refused=admin)
        if admin:
            assert r.status_code == 403, r.text
        else:
            assert 200 <= r.status_code < 300, r.text


@pytest.mark.fault
@pytest.mark.parametrize(("method", "path", "_admin"), PROTECTED)
def test_admin_key_and_admin_token_are_allowed(
    client: TestClient,
    app: FastAPI,
    users: dict[str, str],
    method: str,
    path: str,
    _admin: bool,
    fault_record: FaultRecorder,
) -> None:
    token = client.post("/v1/auth/token", data={"username": users["admin"], "password": PASSWORD}).json()
    for headers in ({"X-API-Key": make_key(app, "admin")}, {"Authorization": f"Bearer {token['access_token']}"}):
        r = _request(client, app, method, path, headers)
        fault_record.responses(r)
        assert 200 <= r.status_code < 300, r.text


@pytest.mark.fault
def test_revocation_through_the_api_takes_effect_immediately(
    client: TestClient, app: FastAPI, fault_record: FaultRecorder
) -> None:
    admin = {"X-API-Key": make_key(app, "admin")}
    created = client.post("/v1/keys", json={"name": "short-lived"}, headers=admin)
    assert created.status_code == 201
    key = {"X-API-Key": created.json()["key"]}
    assert client.get("/v1/models/current", headers=key).status_code == 200  # now cached as valid
    assert client.delete(f"/v1/keys/{created.json()['id']}", headers=admin).status_code == 204
    revoked = client.get("/v1/models/current", headers=key)
    fault_record.responses(revoked, refused=True)
    assert revoked.status_code == 401
    assert client.delete(f"/v1/keys/{created.json()['id']}", headers=admin).status_code == 404


def test_token_endpoint(client: TestClient, users: dict[str, str]) -> None:
    ok = client.post("/v1/auth/token", data={"username": users["reader"], "password": PASSWORD})
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["sub"] == users["reader"] and claims["role"] == "reader"
    assert {"exp", "iat", "aud"} <= set(claims)
    for data in (
        {"username": users["reader"], "password": "wrong password"},
        {"username": "nobody-by-that-name", "password": PASSWORD},
    ):
        r = client.post("/v1/auth/token", data=data)
        assert r.status_code == 401
        assert r.json()["detail"] == "incorrect username or password"  # the same for both: no user enumeration


def test_keys_list_never_shows_secrets(client: TestClient, app: FastAPI) -> None:
    key = make_key(app, "admin")
    r = client.get("/v1/keys", headers={"X-API-Key": key})
    assert r.status_code == 200
    text = r.text
    secret = key.split("_", 2)[2]  # flx_<prefix>_<secret>; the secret itself may contain "_"
    assert secret not in text
    assert "key_hash" not in text and '"key"' not in text
    with services(app).sessions() as session:
        from sqlalchemy import select

        from fluxora.servicedb.models import ApiKey

        hashes = [h for h in session.scalars(select(ApiKey.key_hash))]
    assert not any(h in text for h in hashes)
    assert all(secret not in h for h in hashes)  # stored hashed, not in clear


@pytest.mark.fault
def test_scoped_key_reads_only_its_series(client: TestClient, app: FastAPI, fault_record: FaultRecorder) -> None:
    headers = {"X-API-Key": make_key(app, "reader", series=["series_001"])}
    assert client.get("/v1/forecast", params={"series_id": "series_001"}, headers=headers).status_code == 200
    for params in ({"series_id": SERIES}, {"series_id": "no_such_series"}):
        r = client.get("/v1/forecast", params=params, headers=headers)
        fault_record.responses(r, refused=True)
        assert r.status_code == 403, r.text  # 403 even for an unknown series: no probing other scopes
    r = client.post("/v1/forecast", json={"series_ids": ["series_001", SERIES]}, headers=headers)
    fault_record.responses(r, refused=True)
    assert r.status_code == 403
    c = services(app).store.current
    assert c is not None
    feats = {
        "load_history": [100.0] * c.forecaster.contract.load_history_hours,
        "temp_history": [10.0] * c.forecaster.contract.temp_history_hours,
    }
    body = {"instances": [{"series_id": SERIES, "origin": "2024-02-01T00:00:00Z", "features": feats}]}
    r = client.post("/v1/predict", json=body, headers=headers)
    fault_record.responses(r, refused=True)
    assert r.status_code == 403


def test_scoped_admin_key_created_through_api(client: TestClient, app: FastAPI) -> None:
    admin = {"X-API-Key": make_key(app, "admin")}
    r = client.post("/v1/keys", json={"name": "feeder-7", "series": ["series_001"]}, headers=admin)
    assert r.status_code == 201
    assert r.json()["series"] == ["series_001"] and r.json()["role"] == "reader"
    scoped = {"X-API-Key": r.json()["key"]}
    assert client.get("/v1/forecast", params={"series_id": SERIES}, headers=scoped).status_code == 403


def test_health_and_metrics_need_no_credentials(client: TestClient) -> None:
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert client.get(path).status_code == 200


# --- production mode -----------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", "too-short-secret", "x" * 31])
def test_production_refuses_missing_or_short_secret(tmp_path: Path, secret: str | None) -> None:
    settings = ServiceSettings(
        home=tmp_path,
        tracking_uri=f"sqlite:///{tmp_path}/m.db",
        mode="production",
        jwt_secret=SecretStr(secret) if secret is not None else None,
    )
    with pytest.raises(ConfigError, match="FLUXORA_JWT_SECRET"):
        create_app(settings)


def test_production_starts_with_a_long_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secrets

    secret = secrets.token_urlsafe(48)
    monkeypatch.setenv("FLUXORA_JWT_SECRET", secret)
    settings = ServiceSettings(
        home=tmp_path,
        tracking_uri=f"sqlite:///{tmp_path}/m.db",
        mode="production",
        database_url="postgresql://postgres@127.0.0.1:5432/test",  # production refuses SQLite and
        redis_url="redis://127.0.0.1:6379/0",  # in-memory limits (tests/api/test_production_settings.py)
    )
    assert settings.signing_secret() == secret
    create_app(settings)


def test_local_mode_without_secret_still_requires_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUXORA_JWT_SECRET", raising=False)
    settings = ServiceSettings(home=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/m.db", poll_interval_s=0)
    with TestClient(create_app(settings)) as c:
        assert c.get("/v1/models/history").status_code == 401
        assert c.get("/v1/models/history", headers={"Authorization": f"Bearer {_token()}"}).status_code == 401


def test_serve_in_production_mode_without_secret_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("FLUXORA_JWT_SECRET", raising=False)
    monkeypatch.setenv("FLUXORA_HOME", str(tmp_path))
    assert cli.main(["serve", "serve=production"]) == 2
    assert "FLUXORA_JWT_SECRET" in capsys.readouterr().err


# --- CLI bootstrap -------------------------------------------------------------------------------


def test_cli_keys_create_prints_the_key_alone_on_the_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLUXORA_HOME", str(tmp_path))
    assert cli.main(["keys", "create", "--role", "admin", "--series", "a,b", "--series", "c"]) == 0
    key = capsys.readouterr().out.rstrip("\n").splitlines()[-1]
    settings = ServiceSettings(home=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/m.db", poll_interval_s=0)
    app = create_app(settings)
    with TestClient(app) as c:
        listed = c.get("/v1/keys", headers={"X-API-Key": key})
        assert listed.status_code == 200
        assert listed.json()["keys"][0]["series"] == ["a", "b", "c"]
        assert listed.json()["keys"][0]["role"] == "admin"


def test_cli_users_create_then_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setenv("FLUXORA_HOME", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli.main(["users", "create", "ada", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["users", "create", "bob", "--password-stdin"]) == 1
    settings = ServiceSettings(home=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/m.db", poll_interval_s=0)
    with TestClient(create_app(settings)) as c:
        assert c.post("/v1/auth/token", data={"username": "ada", "password": PASSWORD}).status_code == 200
        assert c.post("/v1/auth/token", data={"username": "bob", "password": "short"}).status_code == 401
