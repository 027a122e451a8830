"""The service database on SQLite and PostgreSQL: migrations up and down, constraints, the
forecast log writer, keys, the model history. PostgreSQL runs when FLUXORA_TEST_POSTGRES_URL is set; each run uses
its own schema, dropped afterwards, so concurrent runs do not collide."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from conftest import postgres_schema
from fluxora import servicedb as db
from fluxora.api import auth
from fluxora.api.forecast_log import BATCH, ForecastLogWriter
from fluxora.errors import DatabaseUnavailableError
from fluxora.servicedb import accounts
from fluxora.servicedb.history import ModelEvent, ModelEventLog
from fluxora.servicedb.models import ApiKey, Base, ForecastLog, ModelEventRow, User

TABLES = {"users", "api_keys", "forecast_log", "model_events"}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, unmigrated database."""
    if request.param == "sqlite":
        e = db.make_engine(f"sqlite:///{tmp_path / 'api.db'}")
        yield e
        e.dispose()
        return
    with postgres_schema("fluxora_test") as (url, schema):
        e = db.make_engine(url, schema=schema)
        try:
            yield e
        finally:
            e.dispose()


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    db.migrate(engine)
    return engine


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_migrations_up_down_up(engine: Engine) -> None:
    assert _tables(engine) == set()
    db.migrate(engine)
    assert _tables(engine) == TABLES
    assert db.current_revision(engine) == "0003"
    db.migrate(engine)  # idempotent
    db.downgrade(engine, "0002")  # 0003 only adds the forecast log's weather columns
    assert _tables(engine) == TABLES
    assert "weather_issued_at" not in {c["name"] for c in inspect(engine).get_columns("forecast_log")}
    db.downgrade(engine, "0001")  # 0002 only adds the model history
    assert _tables(engine) == TABLES - {"model_events"}
    assert db.current_revision(engine) == "0001"
    db.downgrade(engine, "base")
    assert _tables(engine) == set()
    assert db.current_revision(engine) is None
    db.migrate(engine)
    assert _tables(engine) == TABLES


def test_weather_columns_added_to_a_log_with_rows(engine: Engine) -> None:
    """0003 upgrades a database that already has forecast-log rows: they keep their values, with
    no weather recorded (null), and new rows carry a vintage and a fallback count."""
    from sqlalchemy import text

    db.migrate(engine, "0002")
    served = datetime(2024, 6, 1, 12, tzinfo=UTC)
    old = dict(served_at=served, series_id="s1", origin=served, horizon=2, values="[1.0, 2.0]",
               model_version="1", consumer="c", endpoint="single")  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO forecast_log (served_at, series_id, origin, horizon, "values", model_version, '
                "consumer, endpoint) VALUES (:served_at, :series_id, :origin, :horizon, :values, :model_version, "
                ":consumer, :endpoint)"
            ),
            old,
        )
    db.migrate(engine)
    assert db.current_revision(engine) == "0003"
    with engine.begin() as conn:
        conn.execute(
            ForecastLog.__table__.insert(),
            [old | {"values": [3.0], "weather_issued_at": served - timedelta(hours=6), "weather_fallback_steps": 1}],
        )
        rows = conn.execute(
            select(ForecastLog.values, ForecastLog.weather_issued_at, ForecastLog.weather_fallback_steps).order_by(
                ForecastLog.id
            )
        ).all()
    assert [r[0] for r in rows] == [[1.0, 2.0], [3.0]]
    assert rows[0][1:] == (None, None)
    assert rows[1][1].replace(tzinfo=UTC) == served - timedelta(hours=6) and rows[1][2] == 1


def test_models_match_migrations(migrated: Engine) -> None:
    """The ORM models and the migrations describe the same schema (no forgotten migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with migrated.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_username_is_unique(migrated: Engine) -> None:
    with db.sessions(migrated)() as s:
        accounts.create_user(s, "ada", "password-1", "admin")
        with pytest.raises(ValueError, match="exists"):
            accounts.create_user(s, "ada", "password-2")
        s.add(User(username="ada", password_hash="x", role="reader"))
        with pytest.raises(IntegrityError):
            s.commit()


@pytest.mark.parametrize("table", ["users", "api_keys"])
def test_role_is_constrained(migrated: Engine, table: str) -> None:
    with db.sessions(migrated)() as s:
        row = (
            User(username="eve", password_hash="x", role="root")
            if table == "users"
            else ApiKey(prefix="abc", key_hash="x", name="n", role="root")
        )
        s.add(row)
        with pytest.raises(IntegrityError):
            s.commit()


def test_key_prefix_is_unique(migrated: Engine) -> None:
    with db.sessions(migrated)() as s:
        s.add(ApiKey(prefix="same", key_hash="a", name="one", role="reader"))
        s.commit()
        s.add(ApiKey(prefix="same", key_hash="b", name="two", role="reader"))
        with pytest.raises(IntegrityError):
            s.commit()


def _row(i: int, **over: object) -> dict[str, object]:
    origin = datetime(2024, 3, 1, tzinfo=UTC) + timedelta(hours=i)
    return {
        "served_at": datetime.now(UTC),
        "series_id": f"series_{i % 3:03d}",
        "origin": origin,
        "horizon": 3,
        "values": [float(i), float(i) + 0.5, float(i) + 1.25],
        "quantiles": None,
        "model_version": "7",
        "consumer": "key:abc",
        "endpoint": "get_forecast",
        "request_id": f"req-{i}",
        "latency_ms": 1.5,
    } | over


@pytest.mark.parametrize("bad", [{"horizon": 0}, {"series_id": None}, {"model_version": None}])
def test_forecast_log_constraints(migrated: Engine, bad: dict[str, object]) -> None:
    from sqlalchemy import insert

    with pytest.raises(IntegrityError), migrated.begin() as conn:
        conn.execute(insert(ForecastLog), [_row(0, **bad)])


def test_forecast_log_writer_loses_nothing_on_close(migrated: Engine) -> None:
    writer = ForecastLogWriter(migrated, flush_s=60.0)  # a long flush interval: only close() can write
    writer.start()
    n = 2 * BATCH + 17  # several batches plus a partial one
    for i in range(0, n, 10):
        writer.submit([_row(j) for j in range(i, min(i + 10, n))])
    writer.close()
    assert writer.written == n and writer.dropped == 0
    with db.sessions(migrated)() as s:
        assert s.scalar(select(func.count()).select_from(ForecastLog)) == n
        row = s.scalar(select(ForecastLog).where(ForecastLog.request_id == "req-42"))
        assert row is not None
        assert row.values == [42.0, 42.5, 43.25]
        assert row.series_id == "series_000" and row.horizon == 3 and row.model_version == "7"
        origin = row.origin if row.origin.tzinfo else row.origin.replace(tzinfo=UTC)  # SQLite drops the zone
        assert origin == datetime(2024, 3, 1, tzinfo=UTC) + timedelta(hours=42)


def test_forecast_log_writer_flushes_without_close(migrated: Engine) -> None:
    writer = ForecastLogWriter(migrated, flush_s=0.05)
    writer.start()
    try:
        writer.submit([_row(1), _row(2)])
        deadline = datetime.now(UTC) + timedelta(seconds=30)  # a generous bound, not a speed check
        while writer.written < 2 and datetime.now(UTC) < deadline:
            import time

            time.sleep(0.05)
        assert writer.written == 2
    finally:
        writer.close()


def test_pre_encoded_json_is_stored_as_the_same_json(migrated: Engine) -> None:
    """The service logs each computed forecast's values as JSON rendered once (`EncodedJSON`);
    they must come back as the same lists and objects as values the engine encodes itself."""
    from sqlalchemy import String, cast

    from fluxora.api.forecast_cache import Computed
    from fluxora.api.rendering import computed
    from fluxora.models.native import Forecast

    # Values as the service serves them: rounded to 4 decimals (api.rendering), large ones in exponent form.
    values, quantiles = [1.5, 2.25, 1e-4], {"0.1": [1.0, 2.0, 0.0], "0.9": [2.0, 3.5, 1e300]}
    result = Forecast(
        times=np.array([["2024-03-01T01", "2024-03-01T02", "2024-03-01T03"]], dtype="datetime64[ns]"),
        point=np.array([values]),
        quantiles={0.1: np.array([quantiles["0.1"]]), 0.9: np.array([quantiles["0.9"]])},
    )
    rendered: Computed = computed(result, 0, (0.1, 0.9))  # as the service renders a forecast
    encoded = _row(1, values=rendered.values) | {"quantiles": rendered.quantiles}
    plain = _row(2, values=values) | {"quantiles": quantiles}
    writer = ForecastLogWriter(migrated, flush_s=60.0)
    writer.start()
    writer.submit([encoded, plain])
    writer.close()
    with db.sessions(migrated)() as s:
        rows = {r.request_id: r for r in s.scalars(select(ForecastLog))}
        text_of = {
            r.request_id: (r.v, r.q)
            for r in s.execute(
                select(
                    ForecastLog.request_id,
                    cast(ForecastLog.values, String).label("v"),
                    cast(ForecastLog.quantiles, String).label("q"),
                )
            )
        }
    assert rows["req-1"].values == rows["req-2"].values == values
    assert rows["req-1"].quantiles == rows["req-2"].quantiles == quantiles
    assert text_of["req-1"] == text_of["req-2"]  # the same JSON text as the engine writes itself


def test_keys_round_trip_and_revocation(migrated: Engine) -> None:
    factory = db.sessions(migrated)
    with factory() as s:
        row, key = accounts.create_key(s, "feeder", "reader", ["b", "a", "a"])
    assert key.startswith("flx_") and row.prefix in key
    with factory() as s:
        stored = s.get(ApiKey, row.id)
        assert stored is not None and stored.series == ["a", "b"]
        assert key.split("_", 2)[2] not in stored.key_hash  # the secret (it may contain "_")
    verifier = auth.KeyVerifier(factory, cache_s=60)
    who = verifier.verify(key)
    assert who.role == "reader" and who.series == frozenset({"a", "b"})
    with pytest.raises(auth.AuthError):
        verifier.verify(key[:-1] + ("A" if key[-1] != "A" else "B"))
    with factory() as s:
        assert accounts.revoke_key(s, row.id) is not None
    assert verifier.verify(key) == who  # trusted from the cache until forgotten or expired
    verifier.forget(row.prefix)
    with pytest.raises(auth.AuthError, match="revoked"):
        verifier.verify(key)
    uncached = auth.KeyVerifier(factory, cache_s=0)
    with pytest.raises(auth.AuthError):
        uncached.verify(key)


def test_user_delete_keeps_its_keys(migrated: Engine) -> None:
    with db.sessions(migrated)() as s:
        user = accounts.create_user(s, "owner", "password-1")
        row, _ = accounts.create_key(s, "k")
        row.user_id = user.id
        s.commit()
        s.delete(user)
        s.commit()
        s.expire_all()
        again = s.get(ApiKey, row.id)
        assert again is not None and again.user_id is None  # ON DELETE SET NULL


def _event(minute: int, **over: object) -> ModelEvent:
    at = datetime(2024, 3, 1, 12, tzinfo=UTC) + timedelta(minutes=minute, microseconds=123)
    fields: dict[str, object] = {
        "at": at,
        "version": str(minute),
        "event": "served",
        "source": "registry",
        "reason": f"gate passed {minute}",
        "instance": "host-a:101",
    }
    return ModelEvent(**(fields | over))  # type: ignore[arg-type]


def test_model_event_is_constrained(migrated: Engine) -> None:
    from sqlalchemy import insert

    row = {"at": datetime.now(UTC), "version": "1", "source": "registry", "reason": "", "instance": "h:1"}
    with migrated.begin() as conn:
        conn.execute(insert(ModelEventRow), [row | {"event": "served"}, row | {"event": "refused"}])
    with pytest.raises(IntegrityError), migrated.begin() as conn:
        conn.execute(insert(ModelEventRow), [row | {"event": "loaded"}])
    with pytest.raises(IntegrityError), migrated.begin() as conn:
        conn.execute(insert(ModelEventRow), [row | {"event": "served", "instance": None}])


def test_model_events_round_trip_newest_last(migrated: Engine) -> None:
    events = ModelEventLog(migrated)
    recorded = [
        _event(0),
        _event(1, event="refused", reason="ValueError: " + "x" * 900, instance="host-b:202"),
        _event(2, source="last-known-good"),
    ]
    for e in (recorded[2], recorded[0], recorded[1]):  # insertion order is not the history's order
        events.record(e)
    back = events.latest(10)
    assert back[0] == recorded[0] and back[2] == recorded[2]  # zone-aware UTC, microseconds kept
    assert back[1].reason == recorded[1].reason[:500]  # a long reason is cut to the column, not refused
    assert back[1].instance == "host-b:202" and back[1].event == "refused"
    assert all(e.at.tzinfo is not None and e.at.utcoffset() == timedelta(0) for e in back)
    assert events.latest(2) == back[1:]  # the newest two, still oldest first


def test_model_history_read_fails_as_database_unavailable(engine: Engine) -> None:
    with pytest.raises(DatabaseUnavailableError, match="model history"):
        ModelEventLog(engine).latest(10)  # not migrated: no model_events table


def test_url_normalization() -> None:
    assert db.normalize_url("postgresql://u@h:5432/d").startswith("postgresql+psycopg://")
    assert db.normalize_url("postgresql+psycopg://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert db.normalize_url("sqlite:///x.db") == "sqlite:///x.db"
