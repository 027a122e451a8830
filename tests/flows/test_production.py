"""The production configuration end to end, against this machine's PostgreSQL and Redis.

`infra=production serve=production` with real servers started here: an MLflow tracking server
on PostgreSQL (artifacts served by it), a Prefect server on PostgreSQL, Feast with its SQL
registry on PostgreSQL and its online store on Redis, the API's database on PostgreSQL. The
whole pipeline runs as a Prefect flow, the service serves the champion, and with the tracking
server gone the monitoring flow fails with a clear error and leaves nothing half-written.

Each run gets fresh databases (dropped afterwards) and its own Redis database index (flushed).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from process_support import BIN, free_port, start_prefect_server, stop, wait_healthy

from conftest import TINY_OVERRIDES

POSTGRES_URL = os.environ.get("FLUXORA_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("FLUXORA_TEST_REDIS_URL", "")
REDIS_DB = 7  # this module's own Redis database: flushed before and after

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (POSTGRES_URL and REDIS_URL),
        reason="set FLUXORA_TEST_POSTGRES_URL and FLUXORA_TEST_REDIS_URL (e.g. "
        "postgresql://postgres@127.0.0.1:5432/test and redis://127.0.0.1:6379/0) to run the production configuration",
    ),
]

PRODUCTION = ["infra=production", "serve=production"]


def _server_url() -> str:
    """POSTGRES_URL without its database name: postgresql://user@host:port."""
    return POSTGRES_URL.rsplit("/", 1)[0]


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def _query(db: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(f"{_server_url()}/{db}") as conn:
        return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(f"{REDIS_URL.rsplit('/', 1)[0]}/{REDIS_DB}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("production")
    suffix = uuid.uuid4().hex[:8]
    dbs = {part: f"fluxora_it_{part}_{suffix}" for part in ("mlflow", "prefect", "feast", "api")}
    for db in dbs.values():
        _admin(f'create database "{db}"')
    _redis().flushdb()
    pg = _server_url().replace("postgresql:", "postgresql+psycopg:", 1)
    mlflow_port, prefect_port = free_port(), free_port()
    env = os.environ | {
        "FLUXORA_HOME": str(root / "home"),
        "PREFECT_HOME": str(root / "prefect-client"),
        "FLUXORA_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
        "FLUXORA_REDIS_URL": f"{REDIS_URL.rsplit('/', 1)[0]}/{REDIS_DB}",
        "FLUXORA_FEAST_REGISTRY_URL": f"{pg}/{dbs['feast']}",
        "FLUXORA_DATABASE_URL": f"{pg}/{dbs['api']}",
        "FLUXORA_JWT_SECRET": secrets.token_urlsafe(48),
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    mlflow_server = subprocess.Popen(
        [
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
            "--backend-store-uri", f"{pg}/{dbs['mlflow']}",
            "--artifacts-destination", str(root / "mlflow-artifacts"), "--serve-artifacts",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    asyncpg = _server_url().replace("postgresql:", "postgresql+asyncpg:", 1)
    prefect_server = start_prefect_server(
        env
        | {
            "PREFECT_HOME": str(root / "prefect-server"),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"{asyncpg}/{dbs['prefect']}",
        },
        prefect_port,
    )
    try:
        wait_healthy(f"{env['FLUXORA_MLFLOW_TRACKING_URI']}/health", mlflow_server, 180, "the MLflow server")
        wait_healthy(f"{env['PREFECT_API_URL']}/health", prefect_server, 240, "the Prefect server")
        yield {"env": env, "dbs": dbs, "root": root, "mlflow": mlflow_server}
    finally:
        stop(prefect_server)
        stop(mlflow_server)
        _redis().flushdb()
        for db in dbs.values():
            _admin(f'drop database if exists "{db}" with (force)')


def _cli(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "fluxora"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def pipeline_run(servers: dict[str, Any]) -> dict[str, Any]:
    env = servers["env"]
    run = _cli(env, "run", *PRODUCTION, *TINY_OVERRIDES)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return servers


def test_pipeline_flow_runs_on_the_production_servers(pipeline_run: dict[str, Any]) -> None:
    env, dbs = pipeline_run["env"], pipeline_run["dbs"]
    # Prefect: the flow run is recorded, completed, in the PostgreSQL-backed server.
    runs = httpx.post(f"{env['PREFECT_API_URL']}/flow_runs/filter", json={}, timeout=10).json()
    assert [r["state_type"] for r in runs] == ["COMPLETED"]
    assert _query(dbs["prefect"], "select count(*) from flow_run")[0][0] == 1

    # MLflow: one registered version, champion, in the server's PostgreSQL store; artifacts on the server's disk.
    assert _query(dbs["mlflow"], "select count(*) from model_versions")[0][0] == 1
    aliases = _query(dbs["mlflow"], "select alias, version from registered_model_aliases order by alias")
    assert aliases == [("challenger", 1), ("champion", 1)]
    assert list((pipeline_run["root"] / "mlflow-artifacts").rglob("contract.json")), "no model on the server"
    assert not (Path(env["FLUXORA_HOME"]) / "mlflow" / "mlflow.db").exists(), "fell back to the local SQLite"

    # Feast: definitions in the SQL registry, the latest state per series in Redis.
    tables = {r[0] for r in _query(dbs["feast"], "select tablename from pg_tables where schemaname = 'public'")}
    assert {"feature_views", "feature_services", "entities"} <= tables
    assert _query(dbs["feast"], "select count(*) from feature_views")[0][0] >= 1
    assert _redis().dbsize() > 0


def test_status_reads_the_production_registry_and_online_store(pipeline_run: dict[str, Any]) -> None:
    result = _cli(pipeline_run["env"], "status", "--json", *PRODUCTION, *TINY_OVERRIDES)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["champion"]["version"] == "1"
    assert report["online_store"] and all(report["online_store"].values()), report["online_store"]


def test_service_serves_the_champion_and_logs_to_postgres(pipeline_run: dict[str, Any]) -> None:
    env, dbs = pipeline_run["env"], pipeline_run["dbs"]
    created = _cli(env, "keys", "create", "--role", "reader", "--name", "it", *PRODUCTION)
    assert created.returncode == 0, created.stderr[-2000:]
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    service = subprocess.Popen(
        [str(BIN / "fluxora"), "serve", "--port", str(port), *PRODUCTION],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health/ready", service, 180, "the forecast API")
        r = httpx.get(
            f"http://127.0.0.1:{port}/v1/forecast",
            params={"series_id": "series_000", "horizon": 24},
            headers={"X-API-Key": key},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == "1" and len(body["points"]) == 24
        assert httpx.get(f"http://127.0.0.1:{port}/v1/forecast", params={"series_id": "series_000"}).status_code == 401
    finally:
        stop(service)  # a clean shutdown flushes the forecast log
    assert _query(dbs["api"], "select count(*) from api_keys")[0][0] == 1
    assert _query(dbs["api"], "select count(*) from forecast_log")[0][0] >= 1


def test_monitoring_with_the_registry_down_fails_clearly_and_writes_nothing(pipeline_run: dict[str, Any]) -> None:
    env = pipeline_run["env"]
    home = Path(env["FLUXORA_HOME"])
    decisions = home / "reports" / "decisions.jsonl"
    before = decisions.read_text() if decisions.exists() else ""
    stop(pipeline_run["mlflow"])
    code = "import sys; from flows.pipeline import monitor_flow; monitor_flow(overrides=sys.argv[1:])"
    retry_once = ["deploy.io_retries=1", "deploy.io_retry_backoff_s=1"]
    result = subprocess.run(
        [sys.executable, "-c", code, *PRODUCTION, *TINY_OVERRIDES, *retry_once],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "MLflow tracking server at" in output and "unreachable" in output, output[-3000:]
    assert output.count("Retry 1/1 will start") == 1, output[-3000:]  # an I/O failure is retried
    assert (decisions.read_text() if decisions.exists() else "") == before, "a decision was recorded by a failed run"
