"""The forecast log survives a hard kill: a writer process is SIGKILLed after N rows were
submitted (each as a served forecast would be, before its response) and the next start writes
all N to the database, none twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fault_record import FaultRecorder
from sqlalchemy import func, select

from fluxora import servicedb as db
from fluxora.api.forecast_log import ForecastLogWriter
from fluxora.servicedb.models import ForecastLog

pytestmark = pytest.mark.fault

N = 1000

WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from fluxora import servicedb as db
    from fluxora.api.forecast_log import ForecastLogWriter
    from fluxora.servicedb.models import EncodedJSON

    url, wal, n, flush_s = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    writer = ForecastLogWriter(db.make_engine(url), flush_s=flush_s, wal_dir=wal)
    writer.start()
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    for i in range(n):
        row = {
            "served_at": datetime.now(UTC), "series_id": f"series_{i % 7:03d}", "origin": t0 + timedelta(hours=i),
            "horizon": 3, "values": EncodedJSON(f"[{i}.0, 1.5, 2.25]"), "quantiles": {"0.1": [1.0, 2.0, 3.0]},
            "model_version": "7", "consumer": "key:1", "endpoint": "get_forecast", "request_id": f"req-{i}",
            "latency_ms": 1.25,
        }
        if i % 2 == 0:  # the weather columns; odd rows lack them, as rows written before they existed
            row |= {"weather_issued_at": t0 + timedelta(hours=i - 3), "weather_fallback_steps": i % 3}
        writer.submit([row])
        if i % 97 == 0:
            time.sleep(0.002)  # let the writer thread commit some segments while rows arrive
    print("submitted", flush=True)
    time.sleep(600)
    """
)


def _kill_after_submitting(url: str, wal: Path, n: int, flush_s: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(wal), str(n), str(flush_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.strip() == "submitted", proc.stderr.read() if proc.stderr else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _rows(url: str) -> tuple[int, int]:
    engine = db.make_engine(url)
    with db.sessions(engine)() as s:
        total = s.scalar(select(func.count()).select_from(ForecastLog)) or 0
        distinct = s.scalar(select(func.count(func.distinct(ForecastLog.request_id)))) or 0
    engine.dispose()
    return total, distinct


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    engine = db.make_engine(url)
    db.migrate(engine)
    engine.dispose()
    return url


# 60 s: nothing had committed at the kill; 0.01 s: most had, some segments may have committed
# without being deleted yet (their replay must insert nothing twice).
@pytest.mark.parametrize("flush_s", [60.0, 0.01])
def test_rows_submitted_before_sigkill_are_written_at_the_next_start(
    database: str, tmp_path: Path, flush_s: float, fault_record: FaultRecorder
) -> None:
    wal = tmp_path / "wal"
    _kill_after_submitting(database, wal, N, flush_s)
    assert list(wal.glob("*.jsonl")), "no write-ahead file was left"

    engine = db.make_engine(database)
    writer = ForecastLogWriter(engine, flush_s=60.0, wal_dir=wal)
    writer.start()  # writes the dead writer's rows before returning
    try:
        total, distinct = _rows(database)
        fault_record(cases=N, rows_lost_hard_kill=N - distinct, rows_duplicated=total - distinct)
        assert (total, distinct) == (N, N)
    finally:
        writer.close()
    engine.dispose()
    assert writer.written + writer.replayed <= N and writer.dropped == 0
    assert list(wal.iterdir()) == []  # everything written: nothing left to replay

    with db.sessions(db.make_engine(database))() as s:
        row = s.scalar(select(ForecastLog).where(ForecastLog.request_id == "req-42"))
    assert row is not None and row.values == [42.0, 1.5, 2.25] and row.quantiles == {"0.1": [1.0, 2.0, 3.0]}
    issued = datetime(2024, 3, 1, tzinfo=UTC) + timedelta(hours=39)  # the vintage survives the replay
    assert (
        row.weather_issued_at is not None and row.weather_issued_at.replace(tzinfo=UTC) == issued
    )  # SQLite: naive UTC
    assert row.weather_fallback_steps == 0
    with db.sessions(db.make_engine(database))() as s:
        odd = s.scalar(select(ForecastLog).where(ForecastLog.request_id == "req-43"))
    assert odd is not None and (odd.weather_issued_at, odd.weather_fallback_steps) == (None, None)


def test_a_live_writers_files_are_not_taken(database: str, tmp_path: Path) -> None:
    """Two writers on one folder (two services sharing a home): neither replays the other's rows."""
    wal = tmp_path / "wal"
    first = ForecastLogWriter(db.make_engine(database), flush_s=60.0, wal_dir=wal)
    first.start()
    first.submit([_row("a")])
    second = ForecastLogWriter(db.make_engine(database), flush_s=60.0, wal_dir=wal)
    second.start()
    assert second.replayed == 0 and _rows(database) == (0, 0)
    second.close()
    first.close()
    assert _rows(database) == (1, 1) and list(wal.iterdir()) == []


def test_rows_stay_on_disk_while_the_database_is_down(tmp_path: Path, fault_record: FaultRecorder) -> None:
    wal = tmp_path / "wal"
    url = f"sqlite:///{tmp_path / 'never-migrated.db'}"  # no forecast_log table: every insert fails
    writer = ForecastLogWriter(db.make_engine(url), flush_s=60.0, wal_dir=wal)
    writer.start()
    writer.submit([_row("b")])
    writer.close()
    assert writer.written == 0 and writer.dropped == 0 and list(wal.glob("*.jsonl"))

    engine = db.make_engine(url)
    db.migrate(engine)  # the database is back
    restarted = ForecastLogWriter(engine, flush_s=60.0, wal_dir=wal)
    restarted.start()
    restarted.close()
    total, distinct = _rows(url)
    fault_record(cases=1, rows_lost_clean=1 - distinct, rows_duplicated=total - distinct, not_recovered=distinct != 1)
    assert restarted.replayed == 1 and (total, distinct) == (1, 1)


def test_the_service_replays_at_start(
    tmp_path: Path, database: str, tiny_cfg: object, trained_home: object, fault_record: FaultRecorder
) -> None:
    from fastapi.testclient import TestClient
    from serving_support import settings_for

    from fluxora.api.app import create_app

    settings = settings_for(tiny_cfg, trained_home, database_url=database)  # type: ignore[arg-type]
    _kill_after_submitting(database, settings.forecast_log_wal, 50, 60.0)
    with TestClient(create_app(settings)) as c:
        total, distinct = _rows(database)
        fault_record(cases=50, rows_lost_hard_kill=50 - distinct, rows_duplicated=total - distinct)
        assert (total, distinct) == (50, 50)
        assert "fluxora_forecast_log_replayed_total 50.0" in c.get("/metrics").text


def _row(request_id: str) -> dict[str, object]:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return {
        "served_at": now, "series_id": "s", "origin": now, "horizon": 1, "values": [1.0], "quantiles": None,
        "model_version": "1", "consumer": "c", "endpoint": "get_forecast", "request_id": request_id,
        "latency_ms": None,
    }  # fmt: skip
