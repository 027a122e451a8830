"""Everything that talks to MLflow: tracking, logging a trained model, the registry and aliases."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluxora.config import FluxoraConfig
from fluxora.errors import RegistryError
from fluxora.paths import Home, project_root

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from fluxora.models.train import TrainResult

CHAMPION = "champion"
MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    champion: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "champion": self.champion,
            "reason": self.reason,
        }


def configure(home: Home) -> MlflowClient:
    """Point MLflow at this home's SQLite backend; returns a client."""
    import mlflow

    home.mlflow_db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(home.mlflow_tracking_uri)
    mlflow.set_registry_uri(home.mlflow_tracking_uri)
    return mlflow.MlflowClient()


def ensure_experiment(client: MlflowClient, name: str, home: Home) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    home.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(name, artifact_location=home.mlflow_artifacts.as_uri()))


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out |= _flatten(v, f"{key}.") if isinstance(v, dict) else {key: v}
    return out


def log_and_register(
    home: Home, cfg: FluxoraConfig, result: TrainResult, model_dir: Path, data_version: str
) -> RegisteredModel:
    """Log params, metrics and the model to a new run; register a version; alias it champion
    only when it beats the seasonal naive baseline."""
    import mlflow
    import xgboost

    client = configure(home)
    experiment_id = ensure_experiment(client, cfg.train.experiment, home)
    name = cfg.train.registered_model_name
    tags = {
        "fluxora.config_hash": cfg.fingerprint(),
        "fluxora.data_version": data_version,
        "fluxora.git_commit": git_commit(),
        "fluxora.model": cfg.model.name,
    }
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        mlflow.log_params(_flatten(cfg.to_dict()))
        mlflow.log_metrics(
            result.metrics | {"n_train_rows": result.n_train_rows, "n_holdout_rows": result.n_holdout_rows}
        )
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(Path(__file__).parent / "models" / "pyfunc_model.py"),
            artifacts={"model_dir": str(model_dir)},
            pip_requirements=[f"xgboost=={xgboost.__version__}", "numpy", "pandas", f"mlflow=={mlflow.__version__}"],
            registered_model_name=name,
        )
        version = str(info.registered_model_version)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        client.set_model_version_tag(name, version, "fluxora.promotion", result.reason)
        if result.beats_baseline:
            client.set_registered_model_alias(name, CHAMPION, version)
        return RegisteredModel(name, version, run.info.run_id, result.beats_baseline, result.reason)


def log_artifacts(home: Home, run_id: str, paths: list[Path], artifact_path: str) -> None:
    client = configure(home)
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def champion(home: Home, name: str) -> dict[str, Any] | None:
    """The champion version with its run metrics and tags, or None when there is none."""
    from mlflow.exceptions import MlflowException

    client = configure(home)
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    run = client.get_run(mv.run_id) if mv.run_id else None
    return {
        "name": name,
        "version": str(mv.version),
        "run_id": mv.run_id,
        "created": int(mv.creation_timestamp),
        "metrics": dict(run.data.metrics) if run else {},
        "tags": {k: v for k, v in mv.tags.items() if k.startswith("fluxora.")},
    }


def download_champion(tracking_uri: str, name: str, cache: Path) -> tuple[str, Path]:
    """Download `models:/name@champion` into `cache/<name>/<version>`; returns (version, dir).

    The download lands in a temporary folder first and is renamed into place, so a folder in
    the cache is always complete and a version is downloaded once. RegistryError if none.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
        target = cache / name / str(mv.version)
        if target.is_dir():
            return str(mv.version), target
        # Resolve through this client: `download_artifacts("models:/...")` would consult the
        # process-global registry URI instead of `tracking_uri`.
        location = client.get_model_version_download_uri(name, mv.version)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{mv.version}-", dir=target.parent))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(tmp), tracking_uri=tracking_uri)
            try:
                tmp.rename(target)
            except OSError:
                if not target.is_dir():  # another worker won the race only if target exists now
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except MlflowException as exc:
        raise RegistryError(f"no champion for {name!r} in the registry at {tracking_uri}: {exc.message}") from None
    return str(mv.version), target


# --- serving: alias lookups for the model store (kept light: no downloads, no model loading) ---


def alias_version(tracking_uri: str, name: str, alias: str = CHAMPION) -> tuple[str, dict[str, str]]:
    """(version, fluxora.* tags) that `alias` points at now; RegistryError if none or unreachable."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise RegistryError(f"no {alias} for {name!r} in the registry at {tracking_uri}: {exc.message}") from None
    except OSError as exc:  # connection refused / timed out below MLflow's own error types
        raise RegistryError(f"registry at {tracking_uri} unreachable: {exc}") from None
    tags = {k: v for k, v in (mv.tags or {}).items() if k.startswith("fluxora.")}
    return str(mv.version), tags
