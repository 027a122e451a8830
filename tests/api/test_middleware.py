"""Middleware on the real app: request ids, security headers on every response (errors too),
CORS allowlist, body-size limit, rate limits (in memory; Redis when FLUXORA_TEST_REDIS_URL is
set), structured access logs, timing and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from serving_support import key_headers, settings_for

from fluxora.api.app import create_app
from fluxora.api.middleware import SECURITY_HEADERS
from fluxora.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
from fluxora.config import FluxoraConfig
from fluxora.paths import Home

REDIS_ENV = "FLUXORA_TEST_REDIS_URL"
ALLOWED = "https://dashboard.example.com"
LIMIT = 1000


@pytest.fixture(scope="module")
def app(tiny_cfg: FluxoraConfig, trained_home: Home) -> FastAPI:
    app = create_app(settings_for(tiny_cfg, trained_home, cors_origins=[ALLOWED], max_body_bytes=LIMIT))

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    return app


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def headers(app: FastAPI, client: TestClient) -> dict[str, str]:
    return key_headers(app)


def _assert_secure(r: object) -> None:
    h = r.headers  # type: ignore[attr-defined]
    for name, value in SECURITY_HEADERS:
        assert h[name.decode()] == value.decode(), name
    assert "default-src" in h["content-security-policy"]
    assert h["x-request-id"]
    assert h["server-timing"].startswith("app;dur=")


def test_security_headers_on_every_kind_of_response(client: TestClient, headers: dict[str, str]) -> None:
    cases = {
        200: client.get("/v1/forecast", params={"series_id": "series_000"}, headers=headers),
        401: client.get("/v1/forecast", params={"series_id": "series_000"}),
        404: client.get("/no/such/path"),
        405: client.put("/v1/forecast", headers=headers),
        413: client.post("/v1/forecast", content=b"x" * (LIMIT + 1), headers=headers),
        422: client.get("/v1/forecast", params={"horizon": "abc"}, headers=headers),
        500: client.get("/boom"),
    }
    for status, r in cases.items():
        assert r.status_code == status, (status, r.text)
        _assert_secure(r)


def test_unhandled_error_is_a_json_500_without_internals(client: TestClient) -> None:
    r = client.get("/boom", headers={"X-Request-ID": "trace-me-1"})
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error", "request_id": "trace-me-1"}
    assert "passwd" not in r.text and "Traceback" not in r.text


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/health/live", headers={"X-Request-ID": "abc-123.x"})
    assert given.headers["x-request-id"] == "abc-123.x"
    generated = client.get("/health/live")
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.headers["x-request-id"] != client.get("/health/live").headers["x-request-id"]
    for bad in ("has spaces", "x" * 101, "<script>"):
        r = client.get("/health/live", headers={"X-Request-ID": bad})
        assert r.headers["x-request-id"] != bad  # never reflected unchecked into headers and logs


def test_cors_allowlist(client: TestClient, headers: dict[str, str]) -> None:
    ok = client.get("/health/live", headers={"Origin": ALLOWED})
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    other = client.get("/health/live", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers
    preflight = client.options(
        "/v1/forecast",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "X-API-Key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    _assert_secure(preflight)
    denied = client.options(
        "/v1/forecast",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers


def test_body_limit_by_header_and_by_stream(client: TestClient, headers: dict[str, str]) -> None:
    big = json.dumps({"series_ids": ["series_000"] * 200}).encode()
    assert len(big) > LIMIT
    r = client.post("/v1/forecast", content=big, headers=headers | {"Content-Type": "application/json"})
    assert r.status_code == 413
    assert str(LIMIT) in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        for _ in range(4):
            yield b" " * (LIMIT // 2)

    r = client.post("/v1/forecast", content=chunks(), headers=headers | {"Content-Type": "application/json"})
    assert r.status_code == 413
    small = client.post("/v1/forecast", json={"series_ids": ["series_000"], "horizon": 2}, headers=headers)
    assert small.status_code == 200


def test_access_log_is_structured_json(
    client: TestClient, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="fluxora.api.access"):
        client.get("/v1/forecast", params={"series_id": "series_000"}, headers=headers | {"X-Request-ID": "log-1"})
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "fluxora.api.access"]
    (entry,) = [e for e in records if e["request_id"] == "log-1"]
    assert entry["status"] == 200
    assert entry["route"] == "/v1/forecast" and entry["method"] == "GET"
    assert entry["consumer"].startswith("key:")
    assert entry["duration_ms"] >= 0
    assert headers["X-API-Key"] not in json.dumps(records)  # credentials never logged


def test_metrics(client: TestClient, headers: dict[str, str], app: FastAPI) -> None:
    client.get("/v1/forecast", params={"series_id": "series_000"}, headers=headers)
    client.get("/v1/forecast", params={"series_id": "series_000"})
    text = client.get("/metrics").text
    version = app.state.services.store.current.version
    assert 'fluxora_http_requests_total{method="GET",route="/v1/forecast",status="200"}' in text
    assert 'fluxora_http_requests_total{method="GET",route="/v1/forecast",status="401"}' in text
    assert 'fluxora_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/forecast"}' in text
    assert f'fluxora_model_info{{version="{version}"}} 1.0' in text
    assert f'fluxora_predictions_total{{endpoint="get_forecast",model_version="{version}"}}' in text
    assert 'fluxora_model_events_total{event="served"} 1.0' in text


# --- rate limits ---------------------------------------------------------------------------------


def test_memory_token_bucket_refills() -> None:
    now = [0.0]
    limiter = MemoryRateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [limiter.hit("a").allowed for _ in range(4)] == [True, True, True, False]
    denied = limiter.hit("a")
    assert not denied.allowed and denied.retry_after_s == 1
    assert limiter.hit("b").allowed  # per consumer
    now[0] += 2.0  # one token per second at 60/min
    assert [limiter.hit("a").allowed for _ in range(3)] == [True, True, False]


def test_rate_limit_429_with_retry_after(tiny_cfg: FluxoraConfig, trained_home: Home) -> None:
    app = create_app(settings_for(tiny_cfg, trained_home, rate_limit_per_minute=3, rate_limit_burst=3))
    with TestClient(app) as c:
        one, two = key_headers(app), key_headers(app)
        codes = [c.get("/v1/models/history", headers=one).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/v1/models/history", headers=one)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        _assert_secure(r)
        assert c.get("/v1/models/history", headers=two).status_code == 200  # limits are per key
        assert "fluxora_rate_limited_total 2.0" in c.get("/metrics").text


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"Redis rate-limit tests need {REDIS_ENV} (CI sets redis://127.0.0.1:6379/0)")
    return url


def test_redis_limit_holds_across_workers(tiny_cfg: FluxoraConfig, trained_home: Home, redis_url: str) -> None:
    """Two app instances (two workers) sharing Redis enforce one limit for the same key."""
    settings = settings_for(tiny_cfg, trained_home, rate_limit_per_minute=4, redis_url=redis_url)
    worker_a, worker_b = create_app(settings), create_app(settings)
    with TestClient(worker_a) as a, TestClient(worker_b) as b:
        key = key_headers(worker_a)  # same database: valid on both workers
        while time.time() % 60 > 45:  # start well inside a one-minute window, so all six calls share it
            time.sleep(1)
        codes = [(a if i % 2 else b).get("/v1/models/history", headers=key).status_code for i in range(6)]
    assert codes == [200, 200, 200, 200, 429, 429]


def test_redis_limiter_counts_in_redis(redis_url: str) -> None:
    import redis

    prefix = f"fluxora:test:{uuid.uuid4().hex}"
    limiter = RedisRateLimiter(redis_url, per_minute=2, prefix=prefix, window_s=3600)
    other_worker = RedisRateLimiter(redis_url, per_minute=2, prefix=prefix, window_s=3600)
    try:
        assert limiter.hit("k").allowed and other_worker.hit("k").allowed
        denied = limiter.hit("k")
        assert not denied.allowed and 1 <= denied.retry_after_s <= 3600
        assert other_worker.hit("other").allowed
    finally:
        r = redis.Redis.from_url(redis_url)
        for key in r.scan_iter(f"{prefix}:*"):
            r.delete(key)


def test_redis_down_fails_open() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", per_minute=1)
    assert limiter.hit("k").allowed and limiter.hit("k").allowed
    assert limiter.errors == 2
