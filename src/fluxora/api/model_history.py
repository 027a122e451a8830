"""The service's model history in its database (table `model_events`).

`ModelStore` keeps its own events in memory; a process that restarts forgets them, and each
worker only knows its own. `ModelEventLog` stores every event as it happens and answers
`GET /v1/models/history` from the table, so the history covers earlier runs and every worker
sharing the database. Events are rare (start-up, alias moves, refusals): one synchronous
insert per event, in the thread that loads the model, is enough.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import String, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from fluxora.api import db
from fluxora.api.db import ModelEventRow
from fluxora.api.model_store import ModelEvent
from fluxora.errors import DatabaseUnavailableError

log = logging.getLogger("fluxora.api")


def _fit(column: str, value: str) -> str:
    """`value` cut to its column's length: a long error message is cut, not refused."""
    column_type = ModelEventRow.__table__.c[column].type
    assert isinstance(column_type, String) and column_type.length is not None
    return value[: column_type.length]


def _utc(value: datetime) -> datetime:
    """SQLite gives back naive datetimes (the stored value was UTC), PostgreSQL the session's zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ModelEventLog:
    """Writes and reads the `model_events` table. The table exists once `db.migrate` has run."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = db.sessions(engine)

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
