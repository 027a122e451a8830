"""SIGKILL of `fluxora serve` itself (issue 17): every forecast answered before the kill is in the
forecast log after the next start, none twice. The service runs in its own process on the
session's trained home with its own database; its flush interval is a minute, so no row can have
reached the database before the kill: the next start must write them all from its write-ahead file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from fault_record import FaultRecorder
from process_support import free_port, wait_healthy
from serving_support import settings_for
from sqlalchemy import func, select

from conftest import TINY_OVERRIDES
from fluxora import servicedb as db
from fluxora.api.app import create_app
from fluxora.config import FluxoraConfig
from fluxora.paths import Home
from fluxora.servicedb import accounts
from fluxora.servicedb.models import ForecastLog

pytestmark = pytest.mark.fault

REQUESTS = 40


def _key(url: str) -> str:
    engine = db.make_engine(url)
    db.migrate(engine)
    with db.sessions(engine)() as session:
        _, key = accounts.create_key(session, "sigkill", "reader", None)
    engine.dispose()
    return key


def _logged(url: str) -> tuple[int, int]:
    engine = db.make_engine(url)
    with db.sessions(engine)() as s:
        total = s.scalar(select(func.count()).select_from(ForecastLog)) or 0
        distinct = s.scalar(select(func.count(func.distinct(ForecastLog.request_id)))) or 0
    engine.dispose()
    return total, distinct


def test_forecasts_answered_before_a_sigkill_of_the_service_are_all_logged(
    tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path, fault_record: FaultRecorder
) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    headers = {"X-API-Key": _key(url)}
    port = free_port()
    overrides = [*TINY_OVERRIDES, f"infra.database_url={url}", "serve.log_flush_s=60", "serve.rate_limit_per_minute=0"]
    env = os.environ | {"FLUXORA_HOME": str(trained_home.root)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "fluxora.cli", "serve", "--port", str(port), *overrides],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    answered = 0
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(f"{base}/health/ready", serve, 180, "fluxora serve")
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            for i in range(REQUESTS):
                params = {"series_id": f"series_00{i % 2}", "horizon": 1 + i % 6}
                r = client.get("/v1/forecast", params=params, headers={"X-Request-ID": f"kill-{i}"})
                fault_record.responses(r)
                answered += r.status_code == 200
    finally:
        serve.send_signal(signal.SIGKILL)
        serve.wait(timeout=30)

    settings = settings_for(tiny_cfg, trained_home, database_url=url)  # the same write-ahead folder
    with TestClient(create_app(settings)):  # the next start replays what the killed process left
        total, distinct = _logged(url)
    fault_record(rows_lost_hard_kill=answered - distinct, rows_duplicated=total - distinct)
    assert answered == REQUESTS
    assert (total, distinct) == (REQUESTS, REQUESTS)
