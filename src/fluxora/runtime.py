"""Process set-up for entry points (CLI, tests): environment for the libraries, quiet logs.

Must run before Prefect, Feast or MLflow are imported; nothing here runs at import.
"""

from __future__ import annotations

import logging
import os

from fluxora.paths import HOME_ENV, Home

_LIBRARY_ENV = {
    # A new Prefect home migrates its database on first start; the 20 s default is too short here.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no network here, and no phoning home anyway
    "FEAST_USAGE": "False",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOG_UV_FILES": "false",  # the model's requirements are pinned explicitly
    "MLFLOW_LOGGING_LEVEL": "ERROR",
    # Against a tracking server: fail within about a minute when it is down (MLflow's defaults
    # retry for minutes); the flows' own retries decide what happens next.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
_NOISY_LOGGERS = ("mlflow", "alembic", "py.warnings", "feast", "ibis")


def prepare(home: Home | None = None, tracking_uri: str = "") -> Home:
    """Create FLUXORA_HOME, point every library's state into it, and quiet library chatter.

    `tracking_uri` is `cfg.infra.mlflow_tracking_uri` ("" keeps MLflow in the home's SQLite)."""
    home = (home or Home.from_env()).ensure()
    if tracking_uri:
        home = home.with_tracking(tracking_uri)
    os.environ[HOME_ENV] = str(home.root)
    os.environ.setdefault("PREFECT_HOME", str(home.prefect_home))
    for key, value in _LIBRARY_ENV.items():
        os.environ.setdefault(key, value)
    # Libraries re-enable their own deprecation warnings on import; route all warnings to a
    # logger that only shows errors, so the progress lines stay readable.
    logging.captureWarnings(True)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    return home
