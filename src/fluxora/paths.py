"""Where Fluxora keeps things: the project root (config) and FLUXORA_HOME (all run-time state).

Everything the pipeline writes lives under one directory so that deleting it resets the platform.
Nothing here creates directories at import time; `Home.ensure()` does, called by entry points.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

HOME_ENV = "FLUXORA_HOME"
ROOT_ENV = "FLUXORA_PROJECT_ROOT"
_MARKER = Path("conf") / "config.yaml"


def project_root() -> Path:
    """The checkout holding `conf/`: $FLUXORA_PROJECT_ROOT, else the nearest parent of the cwd, else the source tree."""
    if env := os.environ.get(ROOT_ENV):
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if (candidate / _MARKER).is_file():
            return candidate
    source_tree = Path(__file__).resolve().parents[2]  # src/fluxora/paths.py -> repo root (editable install)
    if (source_tree / _MARKER).is_file():
        return source_tree
    raise FileNotFoundError(
        f"cannot find a Fluxora project (no {_MARKER} in {cwd} or its parents); "
        f"run from the repository or set {ROOT_ENV}"
    )


@dataclass(frozen=True)
class Home:
    """The run-time state directory and the fixed layout inside it.

    `tracking_uri` is `infra.mlflow_tracking_uri`: an MLflow tracking server (production); empty
    means this home's own SQLite store. `with_tracking` binds it; entry points do so from config.
    """

    root: Path
    tracking_uri: str = ""

    @classmethod
    def from_env(cls) -> Home:
        env = os.environ.get(HOME_ENV)
        root = Path(env) if env else project_root() / ".fluxora"
        return cls(root.expanduser().resolve())

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def raw_data(self) -> Path:
        return self.data / "raw.parquet"

    @property
    def validated_data(self) -> Path:
        return self.data / "validated.parquet"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def feast_repo(self) -> Path:
        return self.root / "feast"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    def with_tracking(self, uri: str) -> Home:
        return replace(self, tracking_uri=uri)

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.mlflow_db}"

    @property
    def has_registry(self) -> bool:
        """Whether there may be registered models: always for a server, else once the SQLite file exists."""
        return bool(self.tracking_uri) or self.mlflow_db.is_file()

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    def ensure(self) -> Home:
        for d in (
            self.data,
            self.features_dir,
            self.feast_repo,
            self.mlflow_db.parent,
            self.mlflow_artifacts,
            self.prefect_home,
            self.reports,
            self.metrics_dir,
        ):
            d.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def service_database_url(self) -> str:
        """The service database when `infra.database_url` is empty: SQLite under `serving/`."""
        return f"sqlite:///{self.root / 'serving' / 'fluxora.db'}"
