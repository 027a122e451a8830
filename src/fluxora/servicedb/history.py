"""The service's model history in its database (table `model_events`).

`ModelStore` keeps its own events in memory; a process that restarts forgets them, and each
worker only knows its own. `ModelEventLog` stores every event as it happens and answers
`GET /v1/models/history` from the table, so the history covers earlier runs and every worker
sharing the database. Events are rare (start-up, alias moves, refusals): one synchronous
insert per event, in the thread that loads the model, is enough.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import String, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from fluxora import servicedb
from fluxora.errors import DatabaseUnavailableError
from fluxora.servicedb.models import ModelEventRow

log = logging.getLogger("fluxora.api")


def instance_name() -> str:
    """Which service process this is ("host:pid"). Asked per event, not cached at import, so a
    worker forked after import names itself and not its parent."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ModelEvent:
    """One line of the service's model history: a version served or refused, when, why and by
    which service process (several workers and restarts share one history in the database)."""

    at: datetime
    version: str
    event: str  # served | refused
    source: str
    reason: str
    instance: str = field(default_factory=instance_name)


def _fit(column: str, value: str) -> str:
    """`value` cut to its column's length: a long error message is cut, not refused."""
    column_type = ModelEventRow.__table__.c[column].type
    assert isinstance(column_type, String) and column_type.length is not None
    return value[: column_type.length]


def _utc(value: datetime) -> datetime:
    """SQLite gives back naive datetimes (the stored value was UTC), PostgreSQL the session's zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ModelEventLog:
    """Writes and reads the `model_events` table. The table exists once `servicedb.migrate` has run."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = servicedb.sessions(engine)

    def record(self, event: ModelEvent) -> None:
        """Insert one event. Raises on a database failure; `ModelStore` logs it and carries on."""
        row = ModelEventRow(
            at=event.at,
            version=_fit("version", event.version),
            event=event.event,
            source=_fit("source", event.source),
            reason=_fit("reason", event.reason),
            instance=_fit("instance", event.instance),
        )
        with self._sessions() as session:
            session.add(row)
            session.commit()

    def latest(self, limit: int) -> list[ModelEvent]:
        """The newest `limit` events, oldest first. DatabaseUnavailableError (503) when the
        database cannot be read."""
        query = select(ModelEventRow).order_by(ModelEventRow.at.desc(), ModelEventRow.id.desc()).limit(limit)
        try:
            with self._sessions() as session:
                rows = list(session.scalars(query))
        except SQLAlchemyError as exc:
            log.warning("could not read the model history", exc_info=True)
            raise DatabaseUnavailableError(
                f"the model history is unavailable: the service database failed ({type(exc).__name__})"
            ) from None
        return [ModelEvent(_utc(r.at), r.version, r.event, r.source, r.reason, r.instance) for r in reversed(rows)]
