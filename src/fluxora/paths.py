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

# Report names under FLUXORA_HOME/reports. Written here once: the steps write these files, and
# `fluxora status` and the service's Prometheus collector read them without pulling in the
# monitoring package or the steps (this module imports the standard library only).
DRIFT_REPORT = "drift"  # drift.json / drift.html
DRIFT_SERIES_FILE = "drift_series.json"
ACCURACY_REPORT = "accuracy"  # accuracy.json / accuracy.html
VALIDATION_REPORT = "validation"  # validation.json / validation.txt
DECISIONS_FILE = "decisions.jsonl"  # the closed loop's retrain decisions, one JSON line each
STATE_FILE = "loop_state.json"  # the closed loop's last trigger
ALERTS_FILE = "alerts.json"  # webhook alerts sent (kind|subject -> when), for de-duplication, and counts
LEADERBOARD_FILE = "leaderboard.json"
QUARANTINE_FILE = "quarantine.parquet"  # under FLUXORA_HOME/data: rows moved out, with check and reason
REPAIRS_FILE = "repairs.parquet"  # values the gate changed or inserted, with the original


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
    def weather_forecasts(self) -> Path:
        """Issued temperature forecasts (long: every vintage), screened, next to the validated data."""
        return self.data / "weather_forecasts.parquet"

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

    @property
    def quarantine(self) -> Path:
        return self.data / QUARANTINE_FILE

    @property
    def repairs(self) -> Path:
        return self.data / REPAIRS_FILE

    @property
    def drift_json(self) -> Path:
        return self.reports / f"{DRIFT_REPORT}.json"

    @property
    def drift_html(self) -> Path:
        return self.reports / f"{DRIFT_REPORT}.html"

    @property
    def drift_series(self) -> Path:
        return self.reports / DRIFT_SERIES_FILE

    @property
    def accuracy_json(self) -> Path:
        return self.reports / f"{ACCURACY_REPORT}.json"

    @property
    def decisions(self) -> Path:
        return self.reports / DECISIONS_FILE

    @property
    def leaderboard(self) -> Path:
        """`fluxora backtest`'s leaderboard JSON (unless `--output` names another file)."""
        return self.reports / LEADERBOARD_FILE

    @property
    def backtest_plots(self) -> Path:
        return self.reports / "backtest"

    @property
    def train_run(self) -> Path:
        """The latest training's outcome (model version, run id): what later steps refer to."""
        return self.metrics_dir / "train_run.json"

    @property
    def train_metrics(self) -> Path:
        """DVC metrics of the latest training (numbers only)."""
        return self.metrics_dir / "train.json"

    @property
    def backtest_metrics(self) -> Path:
        """DVC metrics of the latest training's backtest: one `<model>.json` per leaderboard row."""
        return self.metrics_dir / "backtest"

    @property
    def monitor_metrics(self) -> Path:
        """DVC metrics of the latest monitoring run: `drift.json`, `accuracy.json`, `webhooks.json` (numbers only)."""
        return self.metrics_dir / "monitor"

    @property
    def plots_dir(self) -> Path:
        """DVC plot data of the latest training's backtest (`forecast_vs_actual.csv`, `error_by_horizon.csv`)."""
        return self.root / "plots"

    @property
    def model_cache(self) -> Path:
        """Where the pipeline keeps downloaded champion models (the service has its own)."""
        return self.root / "cache" / "models"

    @property
    def tuning_db(self) -> Path:
        """`fluxora tune`'s Optuna storage (SQLite): every study and trial, so a search resumes."""
        return self.root / "tuning" / "optuna.db"

    def tuned(self, model: str) -> Path:
        """`fluxora tune`'s result for `model` (`tuned/xgboost.yaml`): the best settings and their overrides."""
        return self.root / "tuned" / f"{model}.yaml"

    def lock_file(self, name: str) -> Path:
        """An inter-process lock of this home (`registry`: MLflow store set-up and registration)."""
        return self.root / "locks" / f"{name}.lock"

    def step_record(self, step: str) -> Path:
        """The step cache's record of `step`'s last finished run."""
        return self.root / "cache" / "steps" / f"{step}.json"

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
    def serving(self) -> Path:
        """The service's own files: its database (SQLite by default), model cache, last known good."""
        return self.root / "serving"

    @property
    def service_database_url(self) -> str:
        """The service database when `infra.database_url` is empty: SQLite under `serving/`."""
        return f"sqlite:///{self.serving / 'fluxora.db'}"

    @property
    def serving_model_cache(self) -> Path:
        """Where the service keeps the champion models it downloaded."""
        return self.serving / "models"

    @property
    def last_known_good(self) -> Path:
        """The service's JSON record of the last model that loaded and passed its smoke prediction."""
        return self.serving / "last_known_good.json"
