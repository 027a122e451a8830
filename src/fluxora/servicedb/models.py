"""The service database's tables: users, API keys, the forecast log and the model history.

The schema is only ever created by the migrations in `fluxora/servicedb/migrations`
(`fluxora.servicedb.migrate`), never by `create_all`; `tests/servicedb/test_database.py` checks that these
models and the migrations describe the same schema.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, CheckConstraint, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("reader", "admin")


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
    # The weather forecast the forecast used: its vintage (None when none was used) and how many
    # steps fell back to persistence (None for a model that reads no weather forecast).
    weather_issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    weather_fallback_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)


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
