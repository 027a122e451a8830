"""Everything that talks to MLflow: tracking, logging a trained model, the registry and aliases."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluxora.config import FluxoraConfig, redact
from fluxora.data.resolution import Resolution
from fluxora.errors import RegistryError, RegistryUnavailableError
from fluxora.faults import failpoint
from fluxora.paths import Home, project_root

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from fluxora.models.selection import GateDecision

CHAMPION = "champion"
GATE_TAG = "fluxora.gate"  # on each version: why the promotion gate promoted it or not
PROMOTE_TAG = "fluxora.gate.promote"  # on each version: "true" when the gate made it champion
COMPLETE_TAG = "fluxora.registered"  # set last: aliases and promotion are done for this version
BEFORE_TAG = "fluxora.gate.champion_before"  # the champion when this version was registered
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
HISTORY_PREFIX = "fluxora.history."  # registered-model tags: one JSON promotion record each
USER_ENV = "FLUXORA_USER"  # who promotes, when set (CI, schedulers); else the OS user
DUPLICATE_TAG = "fluxora.duplicate_of"  # on a run whose version lost a registration race: the version kept
CONCURRENT = "already registered by a concurrent run"
LOCK_TIMEOUT_S = 900.0  # a registration takes seconds; waiting longer means something is stuck

_log = logging.getLogger(__name__)
_opened: set[str] = set()  # tracking URIs whose store this process has set up (tables made, home followed)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    champion: bool
    reason: str
    created: bool = True  # False: an identical version (same data and config) already existed

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "champion": self.champion,
            "reason": self.reason,
            "created": self.created,
        }


def configure(home: Home) -> MlflowClient:
    """Point MLflow at the home's tracking store (a server when configured, else the home's
    SQLite file); returns a client."""
    import mlflow

    if not home.tracking_uri:
        home.mlflow_db.parent.mkdir(parents=True, exist_ok=True)
    elif home.tracking_uri.startswith(("http://", "https://")):
        check_server(home.tracking_uri)
    mlflow.set_tracking_uri(home.mlflow_tracking_uri)
    mlflow.set_registry_uri(home.mlflow_tracking_uri)
    if home.tracking_uri or home.mlflow_tracking_uri in _opened:
        return mlflow.MlflowClient()
    # A new SQLite store gets its tables from the first client that opens it (MLflow checks, then
    # creates: two processes doing so at once collide with "table ... already exists"). The first
    # opening in each process is serialized by the home's lock; later ones find the tables made.
    with _locked(home, "mlflow-store", "set up the MLflow store"):
        client = mlflow.MlflowClient()
        client.search_registered_models(max_results=1)  # the registry store too
        _follow_home(home)
    _opened.add(home.mlflow_tracking_uri)
    return client


@contextmanager
def _locked(home: Home, name: str, what: str) -> Iterator[None]:
    """Hold the home's inter-process lock `name` (an OS file lock: released if the process dies)."""
    from filelock import FileLock, Timeout

    path = home.lock_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(path, timeout=LOCK_TIMEOUT_S):
            yield
    except Timeout:
        raise RegistryError(
            f"could not {what}: another process has held {path} for over {LOCK_TIMEOUT_S:.0f} s; "
            "if no other fluxora run is active, check what holds it (e.g. `fuser` on the file)"
        ) from None


def registration_lock(home: Home, name: str, data_version: str, config_hash: str) -> Any:
    """The lock that makes look-up-then-register one step for (model, data version, config hash)."""
    key = hashlib.sha256(f"{name}\0{data_version}\0{config_hash}".encode()).hexdigest()[:20]
    return _locked(home, f"register-{key}", f"register {name!r}")


# (table, column) of MLflow's SQLite store holding artifact URIs; a column missing from this MLflow
# version's schema is skipped.
_ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
    ("logged_models", "artifact_location"),
)


def _follow_home(home: Home) -> None:
    """Point the store's artifact locations at this home when it was copied or moved here.

    Experiments record an absolute artifact location, so a copied home (`cp -r`) would log into
    the original's artifact folder and a moved one into a folder that is gone. An experiment
    located in another home's `mlflow/artifacts` is moved to this home's, so new runs write
    here; each existing run, model and version location under that folder follows too, except
    one whose artifacts exist only at the original (a copy of the database alone): it keeps
    pointing there, where they can still be read.
    Caller holds the store lock.
    """
    from urllib.parse import unquote, urlparse
    from urllib.request import url2pathname

    own = home.mlflow_artifacts.as_uri()
    with closing(sqlite3.connect(home.mlflow_db, timeout=60)) as db:
        tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return
        olds = {
            loc
            for (loc,) in db.execute("SELECT artifact_location FROM experiments")
            if isinstance(loc, str) and loc.startswith("file://") and loc.endswith("/mlflow/artifacts") and loc != own
        }
        if not olds:
            return
        moved = 0
        with db:  # one transaction: every location follows, or none
            for table, column in _ARTIFACT_COLUMNS:
                if table not in tables or column not in {c[1] for c in db.execute(f"PRAGMA table_info({table})")}:
                    continue
                rows = db.execute(f"SELECT rowid, {column} FROM {table} WHERE {column} LIKE 'file://%'").fetchall()
                for rowid, value in rows:
                    old = next((o for o in olds if value == o or value.startswith(f"{o}/")), None)
                    if old is None:
                        continue
                    new = own + value[len(old) :]
                    here, there = (Path(url2pathname(unquote(urlparse(u).path))) for u in (new, value))
                    if table == "experiments" or here.exists() or not there.exists():
                        db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (new, rowid))
                        moved += 1
        _log.warning(
            "this home was copied or moved from %s: %d MLflow artifact location(s) now point into %s",
            ", ".join(sorted(olds)),
            moved,
            own,
        )


def check_server(uri: str, timeout_s: float = 5.0) -> None:
    """RegistryError, with what to do, unless the MLflow tracking server at `uri` answers its health check.

    MLflow's own client would retry a dead server for a long time and then fail with a
    connection-pool message; a scheduled flow should instead fail fast, say why, and retry later.
    """
    import httpx

    try:
        httpx.get(f"{uri.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
    except httpx.HTTPError as exc:
        raise RegistryError(
            f"the MLflow tracking server at {uri} is unreachable ({exc.__class__.__name__}: {exc}); "
            "start it (make mlflow-server) or point infra.mlflow_tracking_uri / FLUXORA_MLFLOW_TRACKING_URI at it"
        ) from None


def ensure_experiment(client: MlflowClient, name: str, home: Home) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    if home.tracking_uri:  # a server keeps artifacts where it was told to (--artifacts-destination)
        return str(client.create_experiment(name))
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


def _params(d: dict[str, Any]) -> dict[str, Any]:
    """Run parameters: `d` flattened to dotted keys, passwords redacted (`config.redact`)."""
    return _flatten(redact(d))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out |= _flatten(v, f"{key}.") if isinstance(v, dict) else {key: v}
    return out


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    from mlflow.exceptions import MlflowException

    try:
        return list(client.search_model_versions(f"name = '{name}'"))
    except MlflowException:
        return []


def find_version(home: Home, name: str, data_version: str, config_hash: str) -> RegisteredModel | None:
    """The version already registered from this data and config, if any (idempotent training).

    A version whose registration was cut short (the process died after the version existed but
    before its aliases and promotion were done) is completed here, so a rerun after a crash
    finishes the job instead of registering a second version.
    """
    client = configure(home)
    versions = sorted(_versions(client, name), key=lambda v: int(v.version))
    for mv in versions:
        tags = mv.tags or {}
        if tags.get("fluxora.data_version") == data_version and tags.get("fluxora.config_hash") == config_hash:
            reason = "already registered from the same data version and config hash"
            if PROMOTE_TAG in tags and COMPLETE_TAG not in tags:
                newest = max(int(v.version) for v in versions)
                reason = _complete(
                    home, client, name, str(mv.version), str(mv.run_id), tags, resumable=int(mv.version) == newest
                )
            current = _alias_version(client, name, CHAMPION)
            return RegisteredModel(
                name, str(mv.version), str(mv.run_id), current == str(mv.version), reason, created=False
            )
    return None


def _complete(
    home: Home, client: MlflowClient, name: str, version: str, run_id: str, tags: dict[str, str], resumable: bool
) -> str:
    """Finish an interrupted registration: challenger alias, the gate's promotion (at most once),
    the run closed. Not when a newer version exists: moving aliases back to it would undo later work."""
    from mlflow.exceptions import MlflowException

    if not resumable:
        client.set_model_version_tag(name, version, COMPLETE_TAG, "abandoned: a newer version was registered since")
        return "an interrupted registration, superseded by a newer version; left as it was"
    promote_it, before = tags.get(PROMOTE_TAG) == "true", tags.get(BEFORE_TAG) or None
    _finish_registration(home, client, name, version, tags.get(GATE_TAG, ""), promote_it, before)
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "FINISHED")
    except MlflowException:
        pass
    return "completed a registration that an earlier run did not finish"


def _finish_registration(
    home: Home,
    client: MlflowClient,
    name: str,
    version: str,
    reason: str,
    promote_it: bool,
    champion_before: str | None = None,
) -> None:
    """Aliases and promotion for a registered version, each step safe to repeat."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    failpoint("registry:challenger_set")
    if promote_it:
        if _alias_version(client, name, CHAMPION) != version:
            promote(home, name, version, f"gate: {reason}")
        elif not any(r.get("to") == version for r in history(home, name)):
            why = f"gate: {reason} (recorded after an interrupted run)"
            _record_move(home, client, name, champion_before, version, why)
    client.set_model_version_tag(name, version, COMPLETE_TAG, "true")


def run_metrics(home: Home, run_id: str) -> dict[str, float]:
    return dict(configure(home).get_run(run_id).data.metrics)


def log_and_register(
    home: Home,
    cfg: FluxoraConfig,
    model_dir: Path,
    data_version: str,
    metrics: dict[str, float],
    decision: GateDecision,
    artifacts: list[Path] = (),  # type: ignore[assignment]
    backtested: Backtested | None = None,
    inputs: list[DataInput] = (),  # type: ignore[assignment]
) -> RegisteredModel:
    """Log the training to a new run named for what it did (`train xgboost h24 2026-12-02T10:00`):
    config as params, the model's backtest figures and the gate's references as metrics, the data
    files as datasets (`inputs`), artifacts and the model; with `backtested`, one child run per
    leaderboard model. Register a version tagged with data version, config hash, model and contract,
    described by the gate's verdict with a link to the run; alias it `challenger`; make it
    `champion` when the gate says so (recorded in the promotion history).

    Idempotent under concurrency: when a version from the same data version and config hash
    exists by the time this run registers (a concurrent run registered it while this one
    trained), nothing new is registered and that version is returned (`created` False, reason
    `CONCURRENT`). Look-up and registration hold the home's registration lock, so runs sharing a
    home (the local SQLite store, or one machine against a tracking server) never both register.
    Runs on different machines against one tracking server are settled after registering: the
    lowest-numbered version with those tags is kept; a later one is deleted again before it
    gets an alias, and its run is tagged `fluxora.duplicate_of`.
    """
    name = cfg.train.registered_model_name
    config_hash = cfg.fingerprint()
    with registration_lock(home, name, data_version, config_hash):
        existing = find_version(home, name, data_version, config_hash)
        if existing is not None:
            return replace(existing, reason=f"{CONCURRENT} (version {existing.version}); {existing.reason}")
        return _log_and_register(
            home, cfg, model_dir, data_version, metrics, decision, list(artifacts), backtested, list(inputs)
        )


def _log_and_register(
    home: Home,
    cfg: FluxoraConfig,
    model_dir: Path,
    data_version: str,
    metrics: dict[str, float],
    decision: GateDecision,
    artifacts: list[Path],
    backtested: Backtested | None,
    inputs: list[DataInput],
) -> RegisteredModel:
    import mlflow
    import xgboost

    from fluxora.models.native import CONTRACT_FILE, TRAINING_CURVE_FILE

    client = configure(home)
    experiment_id = ensure_experiment(client, cfg.train.experiment, home)
    name = cfg.train.registered_model_name
    contract = json.loads((model_dir / CONTRACT_FILE).read_text())
    model = str(contract["model"])
    horizon = contract.get("horizon")
    if not horizon:  # a contract without it: the configured horizon at the contract's step
        horizon = Resolution.parse(str(contract.get("resolution") or "h")).horizon(cfg.train.horizon)
    horizon = int(horizon)
    tags = {
        "fluxora.config_hash": cfg.fingerprint(),
        "fluxora.data_version": data_version,
        "fluxora.git_commit": git_commit(),
        "fluxora.model": model,
        CONTRACT_TAG: json.dumps({k: contract.get(k) for k in _CONTRACT_KEYS if contract.get(k) is not None}),
    }
    picked = f"{model} (auto)" if cfg.model.name == "auto" else model
    run_name = f"train {picked} h{horizon} {datetime.now(UTC):%Y-%m-%dT%H:%M}"
    champion_before = _alias_version(client, name, CHAMPION)
    note = _train_note(decision, metrics, model, champion_before)
    run_tags = tags | {KIND_TAG: "train", _NOTE: note}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
        run_id = run.info.run_id
        mlflow.log_params(_params(cfg.to_dict()))
        # The trained model's figures and the references it was gated against; each candidate's
        # own are in its child run.
        mlflow.log_metrics({k: v for k, v in metrics.items() if "." not in k and v == v})  # NaN cannot be logged
        datasets = _log_inputs(client, run_id, inputs, "training")
        if (model_dir / TRAINING_CURVE_FILE).is_file():  # an iteratively trained model: its curves
            _log_curves(client, run_id, model, model_dir / TRAINING_CURVE_FILE)
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="backtest")
        if backtested is not None:
            _log_children(client, experiment_id, run_id, cfg, backtested, datasets)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(Path(__file__).parent / "models" / "pyfunc_model.py"),
            artifacts={"model_dir": str(model_dir)},
            pip_requirements=[f"xgboost=={xgboost.__version__}", "numpy", "pandas", f"mlflow=={mlflow.__version__}"],
        )
        failpoint("registry:logged")
        gate_tags = {
            GATE_TAG: decision.reason,
            PROMOTE_TAG: str(decision.promote).lower(),
            BEFORE_TAG: champion_before or "",
        }
        link = run_url(home, experiment_id, run_id)
        description = version_description(decision, metrics, model, champion_before, run_name, link, data_version)
        # The version is created with all its tags and its description in one call: a crash cannot
        # leave a version that the idempotency lookup (data version + config hash) would not recognise.
        version = _create_version(
            client, name, info.model_uri, info.model_id, run_id, tags | gate_tags, description, link
        )
        kept = _earlier_twin(client, name, version, data_version, tags["fluxora.config_hash"])
        if kept is not None:  # another machine's run registered the same data and config first
            client.delete_model_version(name, version)
            mlflow.set_tag(DUPLICATE_TAG, f"{name}/{kept.version}")
            _log.warning(
                "version %s of %r duplicated version %s (a concurrent run); deleted", version, name, kept.version
            )
            champion_now = _alias_version(client, name, CHAMPION) == str(kept.version)
            reason = f"{CONCURRENT} (version {kept.version})"
            return RegisteredModel(name, str(kept.version), str(kept.run_id), champion_now, reason, created=False)
        failpoint("registry:version_created")
        _finish_registration(home, client, name, version, decision.reason, decision.promote)
        return RegisteredModel(name, version, run_id, decision.promote, decision.reason)


# --- what a training or a backtest logs besides the model ----------------------------------------

KIND_TAG = "fluxora.kind"  # on runs: train | backtest (parents), candidate (one child per model)
ROLE_TAG = "fluxora.role"  # on child runs: winner | candidate | baseline | champion
CONTRACT_TAG = "fluxora.contract"  # on versions: the serving contract's summary (JSON); the full one is in the model
_CONTRACT_KEYS = ("model", "horizon", "resolution", "weather", "temperature", "feature_service", "quantiles", "version")
_NOTE = "mlflow.note.content"  # a run's description in the MLflow UI
_PARENT = "mlflow.parentRunId"  # what `mlflow.start_run(nested=True)` sets: the UI nests the run
_BATCH = 1000  # metrics per log_batch call (the tracking API's limit)


@dataclass(frozen=True)
class Backtested:
    """A backtest as the MLflow runs show it: one child run per leaderboard model."""

    board: dict[str, Any]  # models.backtest.leaderboard
    winner: str = ""  # the candidate registered ("" for a plain backtest)
    candidates: tuple[str, ...] = ()  # the models competing for registration (the rest: baselines, champion)
    plots: dict[str, Path] = field(default_factory=dict)  # model -> its forecast-vs-actual PNG


@dataclass(frozen=True)
class DataInput:
    """A data file a training read, logged as an MLflow dataset (`mlflow.log_input`)."""

    name: str
    path: Path
    digest: str  # the file's MD5 (MLflow keeps at most 36 characters)
    data_version: str  # the training's data version, which this file is part of


def run_url(home: Home, experiment_id: str, run_id: str) -> str:
    """Where the run is in the MLflow UI: a full URL with a tracking server, else the UI's own
    route (relative: it resolves against whatever address `mlflow ui` is opened at)."""
    route = f"#/experiments/{experiment_id}/runs/{run_id}"
    uri = home.tracking_uri
    return f"{uri.rstrip('/')}/{route}" if uri.startswith(("http://", "https://")) else route


def _create_version(
    client: MlflowClient,
    name: str,
    model_uri: str,
    model_id: str | None,
    run_id: str,
    tags: dict[str, str],
    description: str,
    link: str,
) -> str:
    """Register a version of `name` (created when missing) from a logged model, with its tags,
    description and run link in one call."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    run_link = link if link.startswith(("http://", "https://")) else None
    mv = client.create_model_version(
        name, model_uri, run_id=run_id, tags=tags, run_link=run_link, description=description, model_id=model_id
    )
    return str(mv.version)


def _figure(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4g}"


def version_description(
    decision: GateDecision,
    metrics: dict[str, float],
    model: str,
    champion_before: str | None,
    run_name: str,
    link: str,
    data_version: str,
) -> str:
    """A registered version's description (Markdown): the gate's verdict, its figures, the run."""
    verdict = (
        "**Promoted to champion** by the promotion gate"
        if decision.promote
        else "**Stays challenger**: the promotion gate refused it"
    )
    m = decision.metric
    rows = [(f"this version ({model})", decision.challenger), ("best seasonal naive", decision.naive)]
    if decision.champion is not None:
        rows.append((f"champion v{champion_before}" if champion_before else "champion", decision.champion))
    lines = [
        f"{verdict}: {decision.reason}.",
        "",
        f"| backtest, same windows | {m.upper()} |",
        "|---|---:|",
        *(f"| {label} | {_figure(value)} |" for label, value in rows),
        "",
    ]
    if f"skill_{m}" in metrics:
        lines += [f"Skill against the best seasonal naive: {metrics[f'skill_{m}']:+.1%}.", ""]
    lines += [
        f"Trained by run [{run_name}]({link}) on data version `{data_version}`; each candidate's "
        "backtest is a child run of it.",
    ]
    return "\n".join(lines)


def _train_note(decision: GateDecision, metrics: dict[str, float], model: str, champion_before: str | None) -> str:
    """The training run's description: what was trained and the gate's verdict."""
    verdict = "promoted to champion" if decision.promote else "stays challenger"
    return (
        f"Backtested the candidates against both seasonal naives"
        f"{f' and champion v{champion_before}' if champion_before else ''} (one child run each), "
        f"refit the best, **{model}**, on the whole training set and registered it: {verdict} "
        f"({decision.reason})."
    )


def _dataset(inp: DataInput) -> Any:
    """An MLflow dataset for a Parquet file: its schema and row count, name, digest and location,
    from the file's footer and a sample of its first rows, never the whole table
    (`fluxora.mlflow_datasets`)."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source

    from fluxora.mlflow_datasets import ParquetFileDataset

    with warnings.catch_warnings():  # MLflow registers its local source for both "" and "file" schemes
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        source = resolve_dataset_source(inp.path.resolve().as_uri())
    return ParquetFileDataset(inp.path, source, inp.name, inp.digest[:36])


def _log_inputs(client: MlflowClient, run_id: str, inputs: list[DataInput], context: str) -> list[Any]:
    """Log the data files to the run as datasets; returns the datasets (to log to child runs too)."""
    datasets = [(inp, _dataset(inp)) for inp in inputs]
    _log_datasets(client, run_id, datasets, context)
    return datasets


def _log_datasets(client: MlflowClient, run_id: str, datasets: list[Any], context: str) -> None:
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    if not datasets:
        return
    client.log_inputs(
        run_id,
        datasets=[
            DatasetInput(
                ds._to_mlflow_entity(),
                [InputTag(MLFLOW_DATASET_CONTEXT, context), InputTag("fluxora.data_version", inp.data_version)],
            )
            for inp, ds in datasets
        ],
    )


def _role(name: str, backtested: Backtested) -> str:
    from fluxora.models.forecasters import BASELINES

    if name == backtested.winner:
        return "winner"
    if name in BASELINES:
        return "baseline"
    return "champion" if name.startswith("champion_v") else "candidate"


def _candidate_params(cfg: FluxoraConfig, name: str, backtest: dict[str, Any]) -> dict[str, Any]:
    """A child run's parameters: the model, the settings it reads (`model.*`) and the backtest's."""
    from dataclasses import fields

    from fluxora.config import MODEL_SCHEMAS

    params: dict[str, Any] = {"model": name}
    if name.startswith("champion_v"):
        params["registered_version"] = name.removeprefix("champion_v")
    elif name.startswith("seasonal_naive_"):
        params["model.season_hours"] = 24 if name.endswith("daily") else 168
    else:
        keys = {f.name for schema in MODEL_SCHEMAS.get(name, ()) for f in fields(schema)}
        params |= {f"model.{f.name}": getattr(cfg.model, f.name) for f in fields(cfg.model) if f.name in keys}
    shown = ("horizon", "weather", "refit", "gap_hours", "train_origin_stride_hours", "mase_season_hours")
    params |= {f"backtest.{k}": backtest[k] for k in shown if backtest.get(k) is not None}
    params["backtest.origins"] = len(backtest.get("origins", ()))
    return params


def _log_children(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    cfg: FluxoraConfig,
    backtested: Backtested,
    datasets: list[Any],
) -> None:
    """One finished child run per leaderboard model: its parameters, overall metrics (step 0),
    per-horizon metrics as `horizon/<metric>` with the step as `step`, its plot and the data."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    backtest = backtested.board["backtest"]
    for entry in backtested.board["models"]:
        name = entry["model"]
        tags = {_PARENT: parent_id, KIND_TAG: "candidate", ROLE_TAG: _role(name, backtested)}
        child = client.create_run(experiment_id, tags=tags, run_name=name)
        run_id = child.info.run_id
        overall = entry["overall"] | {
            "rank": entry["rank"],
            "fit_seconds": entry["fit_seconds"],
            "predict_seconds": entry["predict_seconds"],
        }
        batch = [Metric(k, float(v), now, 0) for k, v in overall.items() if v == v]
        batch += [
            Metric(f"horizon/{k}", float(v), now, int(row["step"]))
            for row in entry["per_horizon"]
            for k, v in row.items()
            if k != "step" and v == v
        ]
        params = [Param(k, str(v)) for k, v in _candidate_params(cfg, name, backtest).items()]
        client.log_batch(run_id, metrics=batch[:_BATCH], params=params)
        for start in range(_BATCH, len(batch), _BATCH):
            client.log_batch(run_id, metrics=batch[start : start + _BATCH])
        _log_datasets(client, run_id, datasets, "backtest")
        if name in backtested.plots:
            client.log_artifact(run_id, str(backtested.plots[name]), artifact_path="plots")
        client.set_terminated(run_id, "FINISHED")


def _log_curves(client: MlflowClient, run_id: str, model: str, path: Path) -> None:
    """Per-epoch training metrics (`{"loss": [...], "val_loss": [...]}`) as `<model>.<name>` with
    the epoch as step, in one batched call (one by one costs ~3 ms each)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    curves = json.loads(path.read_text())
    batch = [
        Metric(f"{model}.{name}", float(v), now, step)
        for name, values in curves.items()
        for step, v in enumerate(values)
        if v == v
    ]
    for start in range(0, len(batch), 1000):  # the tracking API's limit per batch
        client.log_batch(run_id, metrics=batch[start : start + 1000])


def _earlier_twin(
    client: MlflowClient, name: str, version: str, data_version: str, config_hash: str
) -> ModelVersion | None:
    """The lowest-numbered version before `version` with the same data version and config hash."""
    twins = [
        mv
        for mv in _versions(client, name)
        if int(mv.version) < int(version)
        and (mv.tags or {}).get("fluxora.data_version") == data_version
        and (mv.tags or {}).get("fluxora.config_hash") == config_hash
    ]
    return min(twins, key=lambda mv: int(mv.version), default=None)


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _who() -> str:
    try:
        return os.environ.get(USER_ENV) or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def history(home: Home, name: str) -> list[dict[str, Any]]:
    """Promotion records (who, when, from, to, why), oldest first."""
    from mlflow.exceptions import MlflowException

    client = configure(home)
    try:
        tags = client.get_registered_model(name).tags
    except MlflowException:
        return []
    keys = sorted(k for k in tags if k.startswith(HISTORY_PREFIX))
    return [json.loads(tags[k]) for k in keys]


def promote(home: Home, name: str, version: str, why: str) -> dict[str, Any]:
    """Point `champion` at `version` and append the move to the promotion history."""
    from mlflow.exceptions import MlflowException

    client = configure(home)
    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryError(f"{name!r} has no version {version!r}") from None
    previous = _alias_version(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    failpoint("registry:champion_moved")
    return _record_move(home, client, name, previous, str(version), why)


def _record_move(
    home: Home, client: MlflowClient, name: str, previous: str | None, version: str, why: str
) -> dict[str, Any]:
    record = {
        "who": _who(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "from": previous,
        "to": version,
        "why": why,
    }
    number = len(history(home, name)) + 1
    client.set_registered_model_tag(name, f"{HISTORY_PREFIX}{number:05d}", json.dumps(record))
    return record


def rollback(home: Home, name: str, why: str = "manual rollback") -> dict[str, Any]:
    """Move `champion` back to the version it replaced most recently."""
    client = configure(home)
    current = _alias_version(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name!r} has no champion to roll back")
    for record in reversed(history(home, name)):
        if record["to"] == current and record["from"] and record["from"] != current:
            return promote(home, name, record["from"], f"rollback from v{current}: {why}")
    raise RegistryError(f"no earlier champion of {name!r} to roll back to (history has none before v{current})")


def log_backtest(
    home: Home,
    cfg: FluxoraConfig,
    board: dict[str, Any],
    plots: list[Path],
    leaderboard: Path,
    model_plots: dict[str, Path] | None = None,
    inputs: list[DataInput] = (),  # type: ignore[assignment]
) -> str:
    """A backtest run (`backtest 4 models h24 …`): its settings, the leaderboard and plots, the data;
    one child run per model with its metrics (see `_log_children`)."""
    import mlflow

    client = configure(home)
    experiment_id = ensure_experiment(client, cfg.train.experiment, home)
    bt = board["backtest"]
    name = f"backtest {len(board['models'])} models h{bt['horizon']} {datetime.now(UTC):%Y-%m-%dT%H:%M}"
    best = board["models"][0] if board["models"] else None
    note = (
        f"Rolling-origin backtest of {len(board['models'])} models on {len(bt['origins'])} origins "
        f"({board['n_series']} series, weather {bt['weather']}, refit {bt['refit']}), one child run each"
        + (f"; best by {board['metric'].upper()}: **{best['model']}**." if best else ".")
    )
    tags = {KIND_TAG: "backtest", "fluxora.config_hash": cfg.fingerprint(), _NOTE: note}
    if board.get("data_version"):
        tags["fluxora.data_version"] = str(board["data_version"])
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
        run_id = run.info.run_id
        mlflow.log_params(_params({"backtest": bt | {"origins": len(bt["origins"])}}))
        datasets = _log_inputs(client, run_id, list(inputs), "backtest")
        mlflow.log_artifact(str(leaderboard), artifact_path="backtest")
        for path in plots:
            mlflow.log_artifact(str(path), artifact_path="backtest")
        _log_children(client, experiment_id, run_id, cfg, Backtested(board, plots=model_plots or {}), datasets)
        return str(run_id)


def log_artifacts(home: Home, run_id: str, paths: list[Path], artifact_path: str) -> None:
    client = configure(home)
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def download_artifacts(home: Home, run_id: str, artifact_path: str, target: Path) -> Path | None:
    """A run's artifact folder downloaded under `target`, or None when the run has none there."""
    client = configure(home)
    if not client.list_artifacts(run_id, artifact_path):
        return None
    return Path(client.download_artifacts(run_id, artifact_path, str(target)))


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
        "challenger": _alias_version(client, name, CHALLENGER),
    }


def read_champion(home: Home, name: str) -> dict[str, Any] | None:
    """`champion(home, name)`, read straight from the home's SQLite store when it has no tracking
    server: the same answer without importing MLflow (~4 s here), for `fluxora status`."""
    if home.tracking_uri:
        return champion(home, name)
    with _read_only(home.mlflow_db) as db:
        if db is None:
            return None
        aliases = _sqlite_aliases(db, name)
        if CHAMPION not in aliases:
            return None
        version = aliases[CHAMPION]
        row = db.execute(
            "SELECT run_id, creation_time FROM model_versions WHERE workspace = ? AND name = ? AND version = ?",
            (_WORKSPACE, name, version),
        ).fetchone()
        if row is None:
            return None
        run_id, created = row
        metrics = {
            key: (float("nan") if is_nan else float(value))
            for key, value, is_nan in db.execute(
                "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id or "",)
            )
        }
        tags = dict(
            db.execute(
                "SELECT key, value FROM model_version_tags WHERE workspace = ? AND name = ? AND version = ? "
                "AND key LIKE 'fluxora.%'",
                (_WORKSPACE, name, version),
            ).fetchall()
        )
    challenger = aliases.get(CHALLENGER)
    return {
        "name": name,
        "version": str(version),
        "run_id": run_id,
        "created": int(created),
        "metrics": metrics,
        "tags": tags,
        "challenger": None if challenger is None else str(challenger),
    }


def read_history(home: Home, name: str) -> list[dict[str, Any]]:
    """`history(home, name)`, read from the home's SQLite store without MLflow when it has no
    tracking server (see `read_champion`)."""
    if home.tracking_uri:
        return history(home, name)
    with _read_only(home.mlflow_db) as db:
        if db is None:
            return []
        rows = db.execute(
            "SELECT key, value FROM registered_model_tags WHERE workspace = ? AND name = ? AND key LIKE ?",
            (_WORKSPACE, name, f"{HISTORY_PREFIX}%"),
        ).fetchall()
    return [json.loads(value) for _, value in sorted(rows)]


def open_read_only(path: Path, timeout_s: float = 10.0) -> sqlite3.Connection:
    """A read-only connection to an existing SQLite file: looking never creates or changes it."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s)


_WORKSPACE = "default"  # MLflow 3's registry tables carry a workspace; a local store has only this one


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to MLflow's SQLite store, or None when it does not exist or holds no
    registry yet (opened read-only: nothing is created by looking). Other failures are a RegistryError."""
    if not path.is_file():
        yield None
        return
    try:
        with closing(open_read_only(path)) as db:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'registered_model_aliases'")
            yield db if found.fetchone() else None
    except sqlite3.Error as exc:
        raise RegistryError(f"cannot read the registry in {path}: {exc}") from None


def _sqlite_aliases(db: sqlite3.Connection, name: str) -> dict[str, int]:
    rows = db.execute(
        "SELECT alias, version FROM registered_model_aliases WHERE workspace = ? AND name = ?", (_WORKSPACE, name)
    )
    return {alias: int(version) for alias, version in rows}


def download_champion(tracking_uri: str, name: str, cache: Path) -> tuple[str, Path]:
    """Download `models:/name@champion` into `cache/<name>/<version>`; returns (version, dir).

    The download lands in a temporary folder first and is renamed into place, so a folder in
    the cache is always complete and a version is downloaded once. RegistryError if none,
    RegistryUnavailableError if the registry cannot be read (see `check_readable`).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    check_readable(tracking_uri, f"{name!r}@{CHAMPION}")
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
        raise _read_error(exc, tracking_uri, name, CHAMPION) from None
    finally:
        _release_sqlite(tracking_uri)
    return str(mv.version), target


# --- serving: alias lookups for the model store (kept light: no downloads, no model loading) ---

# MLflow's answers that mean "the registry answered: there is no such model or alias"; any other
# failure (refused, timed out, 5xx, a broken database) means it could not be read.
_ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def check_readable(tracking_uri: str, reading: str = "") -> None:
    """RegistryUnavailableError unless the registry at `tracking_uri` can be read, checked without
    writing anything. For `sqlite:///` URIs the file must exist and hold MLflow's registry tables:
    it is opened read-only first, because MLflow's store would create a missing file (and an
    empty registry schema in it) on first connect, and a service reading that empty file would
    never see the real registry when it is restored. Servers are checked by the calls themselves."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    import sqlite3

    path = Path(tracking_uri.removeprefix("sqlite:///"))
    head = f"registry unreachable (reading {reading})" if reading else "registry unreachable"
    if not path.is_file():
        raise RegistryUnavailableError(f"{head}: the tracking database {path} does not exist")
    try:
        with contextlib.closing(open_read_only(path, timeout_s=5.0)) as conn:
            found = conn.execute("select 1 from sqlite_master where type = 'table' and name = 'registered_models'")
            if found.fetchone() is None:
                raise RegistryUnavailableError(f"{head}: {path} holds no MLflow registry tables")
    except sqlite3.Error as exc:
        raise RegistryUnavailableError(f"{head}: cannot read {path}: {exc}") from None


def _release_sqlite(tracking_uri: str) -> None:
    """Close the pooled SQLite connections MLflow keeps per URI for the whole process. A pooled
    connection stays bound to the file it opened, even after that file is deleted or replaced;
    closed after each read, the next read opens whatever file is at the path then, so a
    restored registry is seen at the next poll without a restart."""
    if not tracking_uri.startswith("sqlite:"):
        return
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    for store in (RegistryStore, TrackingStore):
        engine = getattr(store, "_engine_map", {}).get(tracking_uri)  # MLflow's per-URI engine cache
        if engine is not None:
            engine.dispose()


def _read_error(exc: Any, tracking_uri: str, name: str, alias: str) -> RegistryError:
    if getattr(exc, "error_code", "") in _ABSENT:
        return RegistryError(f"no {alias} for {name!r} in the registry at {tracking_uri}: {exc.message}")
    return RegistryUnavailableError(
        f"registry unreachable at {tracking_uri} (reading {name!r}@{alias}): {exc.message.splitlines()[0][:300]}"
    )


def alias_version(tracking_uri: str, name: str, alias: str = CHAMPION) -> tuple[str, dict[str, str]]:
    """(version, fluxora.* tags) that `alias` points at now. RegistryError if there is none,
    RegistryUnavailableError if the registry cannot be read (nothing is created to find out)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    check_readable(tracking_uri, f"{name!r}@{alias}")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise _read_error(exc, tracking_uri, name, alias) from None
    except OSError as exc:  # connection refused / timed out below MLflow's own error types
        raise RegistryUnavailableError(f"registry unreachable at {tracking_uri}: {exc}") from None
    finally:
        _release_sqlite(tracking_uri)
    tags = {k: v for k, v in (mv.tags or {}).items() if k.startswith("fluxora.")}
    return str(mv.version), tags


STUDY_TAG = "fluxora.study"  # on tuning runs: the Optuna study (`fluxora tune`)
TRIAL_TAG = "fluxora.trial"  # on a trial's run: the Optuna trial number


def start_tuning(
    home: Home,
    cfg: FluxoraConfig,
    study: str,
    settings: dict[str, Any],
    inputs: list[DataInput],
    run_id: str = "",
) -> str:
    """A study's parent run (`tune xgboost <study>`): its settings and data once, at creation.
    A resumed study passes its run: reopened, so every trial of the study nests under one run
    (a new one when that run is gone, e.g. another tracking store)."""
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    client = configure(home)
    if run_id:
        try:
            client.update_run(run_id, status="RUNNING")
            return run_id
        except MlflowException:
            _log.warning("tuning run %s is not in this tracking store; starting a new one", run_id)
    experiment_id = ensure_experiment(client, cfg.train.experiment, home)
    note = (
        f"Optuna search of XGBoost's settings, study `{study}`: one child run per trial; "
        "the best trial's settings and score are this run's `best.*` tags and metrics."
    )
    tags = {KIND_TAG: "tune", STUDY_TAG: study, "fluxora.config_hash": cfg.fingerprint(), _NOTE: note}
    if inputs:
        tags["fluxora.data_version"] = inputs[0].data_version
    run = client.create_run(experiment_id, tags=tags, run_name=f"tune xgboost {study}")
    new_id = str(run.info.run_id)
    client.log_batch(new_id, params=[Param(k, str(v)) for k, v in _params(settings).items()])
    _log_inputs(client, new_id, inputs, "tune")
    return new_id


def log_trial(home: Home, parent_id: str, number: int, params: dict[str, Any], scores: dict[str, float]) -> str:
    """One finished trial as a child run of the study's: its `model.*` settings and its metrics."""
    from mlflow.entities import Metric, Param

    client = configure(home)
    parent = client.get_run(parent_id)
    tags = {
        _PARENT: parent_id,
        KIND_TAG: "trial",
        TRIAL_TAG: str(number),
        STUDY_TAG: parent.data.tags.get(STUDY_TAG, ""),
    }
    child = client.create_run(parent.info.experiment_id, tags=tags, run_name=f"trial {number}")
    run_id = str(child.info.run_id)
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in scores.items() if v == v],
        params=[Param(f"model.{k}", str(v)) for k, v in params.items()],
    )
    client.set_terminated(run_id, "FINISHED")
    return run_id


def finish_tuning(
    home: Home, run_id: str, best: dict[str, Any] | None, trials: int, artifacts: list[Path], status: str = "FINISHED"
) -> None:
    """The study's best on its parent run (metric `best_<metric>` with the trials so far as its step,
    tags `best.model.*`, `best.trial`), the result file as an artifact, and the run ended with `status`."""
    from mlflow.entities import Metric, RunTag

    client = configure(home)
    if best is None:
        client.set_terminated(run_id, status)
        return
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"best_{best['metric']}", float(best["value"]), now, trials),
        Metric("trials", trials, now, trials),
    ]
    tags = [RunTag(f"best.model.{k}", str(v)) for k, v in best["params"].items()]
    tags.append(RunTag("best.trial", str(best["trial"])))
    client.log_batch(run_id, metrics=metrics, tags=tags)
    for path in artifacts:
        client.log_artifact(run_id, str(path), artifact_path="tune")
    client.set_terminated(run_id, status)
