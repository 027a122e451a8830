"""Process set-up for entry points (CLI, flows, DVC stages, the service, tests): the one place a
`Home` is made, the environment for the libraries, quiet logs.

Must run before Prefect, Feast or MLflow are imported; nothing here runs at import.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING

from fluxora.paths import HOME_ENV, Home

if TYPE_CHECKING:
    from fluxora.config import FluxoraConfig

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


def prepare(home: Home | None = None, cfg: FluxoraConfig | None = None) -> Home:
    """The home every step, flow and service of this process uses: `home` (default: $FLUXORA_HOME,
    else `.fluxora/` in the project) created, bound to `cfg.infra.mlflow_tracking_uri` when the
    config names a tracking server (else MLflow stays in the home's SQLite), with every library's
    state pointed into it and library chatter quieted."""
    home = (home or Home.from_env()).ensure()
    if cfg is not None and cfg.infra.mlflow_tracking_uri:
        home = home.with_tracking(cfg.infra.mlflow_tracking_uri)
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


def release_memory() -> None:
    """Hand the memory a finished step freed back to the operating system.

    glibc keeps freed heap pages in its arenas and Arrow's allocator (mimalloc) keeps freed
    blocks, so without this a process that once held a large table keeps that peak as resident
    memory for the rest of a run, and the next step's peak comes on top of it."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(ImportError):
        import pyarrow

        pyarrow.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
