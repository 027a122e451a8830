"""The service's database: users, API keys, the forecast log and the model history (SQLAlchemy 2,
Alembic migrations). Used by the API, the monitoring step (which reads the forecast log) and the
CLI (users and keys).

SQLite under FLUXORA_HOME by default (`Home.service_database_url`); PostgreSQL when
`infra.database_url` says so. This module opens and migrates it; the tables are in `models`,
users and keys in `accounts`, the model history in `history`, the schema in `migrations/`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import sessionmaker

from fluxora.servicedb.models import EncodedJSON

MIGRATIONS = Path(__file__).parent / "migrations"


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
