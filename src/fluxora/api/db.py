"""The service's database: users, API keys, the forecast log and the model history (SQLAlchemy 2, Alembic migrations).

SQLite under FLUXORA_HOME by default; PostgreSQL when `infra.database_url` says so. The schema is
only ever created by the migrations in `fluxora/api/migrations` (`migrate`), never by `create_all`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

ROLES = ("reader", "admin")
MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('reader', 'admin')", name="ck_users_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiKey(Base):
    """A consumer's key: only `prefix` (public, for lookup) and a hash of the secret are stored."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('reader', 'admin')", name="ck_api_keys_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    series: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # None: every series
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ForecastLog(Base):
    """Every served forecast; the monitoring flow joins it with actuals (realized accuracy)."""

    __tablename__ = "forecast_log"
    __table_args__ = (CheckConstraint("horizon >= 1", name="ck_forecast_log_horizon"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    served_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    series_id: Mapped[str] = mapped_column(String(200), index=True)
    origin: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    horizon: Mapped[int] = mapped_column(Integer)
    values: Mapped[list[float]] = mapped_column(JSON)
    quantiles: Mapped[dict[str, list[float]] | None] = mapped_column(JSON, nullable=True)
    model_version: Mapped[str] = mapped_column(String(50))
    consumer: Mapped[str] = mapped_column(String(150))
    endpoint: Mapped[str] = mapped_column(String(50))
    request_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)


class ModelEventRow(Base):
    """The service's model history: every version a service process served or refused. Kept
    here rather than in each process's memory so it survives restarts and every worker sharing
    the database reports the same history (`GET /v1/models/history`)."""

    __tablename__ = "model_events"
    __table_args__ = (CheckConstraint("event IN ('served', 'refused')", name="ck_model_events_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    version: Mapped[str] = mapped_column(String(50))
    event: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str] = mapped_column(String(500))
    instance: Mapped[str] = mapped_column(String(200))  # "host:pid" of the process that recorded it


class EncodedJSON(str):
    """A JSON column value already rendered as JSON text: the engine's serializer passes it
    through instead of encoding it again. The service renders each computed forecast once
    and logs it for every request it answers (see `forecast_log`)."""


def _json_serializer(value: Any) -> str:
    return value if isinstance(value, EncodedJSON) else json.dumps(value)


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the only PostgreSQL driver installed)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, schema: str | None = None) -> Engine:
    """An engine for `url`; SQLite gets WAL and a busy timeout, PostgreSQL an optional search_path."""
    url = normalize_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "json_serializer": _json_serializer}
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif schema is not None:
        kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the forecast-log writer
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()  # no alembic.ini: works the same from a checkout and an installed wheel
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to `revision` (idempotent)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        rev: str | None = MigrationContext.configure(conn).get_current_revision()
        return rev


def sessions(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)
