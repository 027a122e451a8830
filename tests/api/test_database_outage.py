"""The service database goes away while the service runs (issue 17: database outages). What
needs the database answers 503 with Retry-After, what does not (a forecast for a key already
verified) keeps serving, the forecasts served meanwhile are in the log once the database is back,
and nothing is a 500."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fault_record import FaultRecorder
from serving_support import make_key, services, settings_for
from sqlalchemy import func, select

from fluxora import servicedb as db
from fluxora.api.app import create_app
from fluxora.config import FluxoraConfig
from fluxora.paths import Home
from fluxora.servicedb.models import ForecastLog

pytestmark = pytest.mark.fault

FORECAST = ("/v1/forecast", {"series_id": "series_000", "horizon": 3})


def _take_away(path: Path, away: Path) -> None:
    """The database file (and SQLite's WAL files) moved away, a folder in its place: every new
    connection fails ("unable to open database file"), as with a server that is down."""
    away.mkdir()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            os.rename(f"{path}{suffix}", away / f"db{suffix}")
    path.mkdir()


def _bring_back(path: Path, away: Path) -> None:
    path.rmdir()
    for suffix in ("", "-wal", "-shm"):
        if (away / f"db{suffix}").exists():
            os.rename(away / f"db{suffix}", f"{path}{suffix}")


def test_service_database_outage_is_503_and_the_log_catches_up(
    tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path, fault_record: FaultRecorder
) -> None:
    path = tmp_path / "api.db"
    url = f"sqlite:///{path}"
    app = create_app(settings_for(tiny_cfg, trained_home, database_url=url, key_cache_s=600.0))
    with TestClient(app, raise_server_exceptions=False) as c:
        verified = {"X-API-Key": make_key(app)}
        unverified = {"X-API-Key": make_key(app, "admin")}
        assert c.get(FORECAST[0], params=FORECAST[1], headers=verified).status_code == 200  # now cached

        services(app).engine.dispose()  # pooled SQLite connections would keep the moved file open
        _take_away(path, tmp_path / "away")
        served = c.get(FORECAST[0], params=FORECAST[1], headers=verified)
        refused = [
            c.get(FORECAST[0], params=FORECAST[1], headers=unverified),
            c.get("/v1/models/history", headers=verified),
            c.get("/v1/keys", headers=unverified),
            c.post("/v1/keys", json={"name": "during-outage"}, headers=unverified),
            c.post("/v1/auth/token", data={"username": "someone", "password": "x" * 12}),
        ]
        fault_record.responses(served, *refused)

        _bring_back(path, tmp_path / "away")
        after = c.get(FORECAST[0], params=FORECAST[1], headers=unverified)
        fault_record.responses(after)
    answered = 1 + (served.status_code == 200) + (after.status_code == 200)
    engine = db.make_engine(url)
    with db.sessions(engine)() as s:
        logged = s.scalar(select(func.count()).select_from(ForecastLog)) or 0
    engine.dispose()
    fault_record(not_recovered=after.status_code != 200, rows_lost_clean=max(0, answered - logged))

    assert served.status_code == 200, served.text
    assert [r.status_code for r in refused] == [503] * len(refused), [(r.status_code, r.text) for r in refused]
    assert all(r.headers.get("Retry-After") for r in refused)
    assert after.status_code == 200, after.text
    assert logged == answered == 3
