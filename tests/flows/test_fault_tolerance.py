"""SIGKILL the training flow at each stage boundary, rerun it, and check the registry.

The flow runs in its own process against a real Prefect server; `FLUXORA_FAILPOINT` makes the
process kill itself with SIGKILL at the named boundary (see `fluxora.faults`), which no handler
can intercept. After the rerun: it completed, the registry has exactly one new version, that
version's registration is complete, and the champion moved at most once.

Each case starts from a copy of one prepared home: a champion (v1) and newer data, with a gate
margin that promotes the retrained model, so every boundary (`registry:champion_moved` too) is hit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_record import FaultRecorder
from process_support import free_port, start_prefect_server, stop, wait_healthy

from conftest import TINY_OVERRIDES
from fluxora import registry
from fluxora.config import compose
from fluxora.paths import Home

pytestmark = [pytest.mark.integration, pytest.mark.fault]

# One more week than the champion saw; the gate is made to promote (this tests recovery, not the gate).
NEW_DATA = [*TINY_OVERRIDES, "data.days=52", "train.promotion_margin=-10"]
BOUNDARIES = [
    "train:backtested",
    "train:fitted",
    "registry:logged",
    "registry:version_created",
    "registry:challenger_set",
    "registry:champion_moved",
    "after:train",
]
NAME = compose(TINY_OVERRIDES).train.registered_model_name
TRAIN = "import sys; from flows.pipeline import train_flow; train_flow(overrides=sys.argv[1:])"
PIPELINE = (
    "import json, sys; from flows.pipeline import pipeline_flow; "
    "print('RESULTS ' + json.dumps(pipeline_flow(overrides=sys.argv[1:]).outputs(), default=str))"
)


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("faults-prefect")
    port = free_port()
    env = os.environ | {
        "PREFECT_HOME": str(root),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    server = start_prefect_server(env, port)
    try:
        wait_healthy(f"{env['PREFECT_API_URL']}/health", server, 240, "the Prefect server")
        yield env
    finally:
        stop(server)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A home with a champion v1 (a weak one: few trees) and newer validated data with its features."""
    from fluxora import steps
    from fluxora.runtime import prepare

    home = prepare(Home(tmp_path_factory.mktemp("faults-base")))
    weak = compose(
        [*TINY_OVERRIDES, "model=xgboost", "model.n_estimators=3", "model.quantile_estimators=3"]
    )  # not auto: ridge is no weak model
    for step in (steps.ingest, steps.validate, steps.features, steps.train):
        step(weak, home)
    if registry.champion(home, NAME) is None:  # the weak model need not beat seasonal naive
        registry.promote(home, NAME, "1", "test set-up: a weak champion to be replaced")
    new = compose(NEW_DATA)
    for step in (steps.ingest, steps.validate, steps.features):
        step(new, home)
    return home


def _run(
    env: dict[str, str], home: Path, failpoint: str | None, code: str = TRAIN, overrides: list[str] = NEW_DATA
) -> subprocess.CompletedProcess[str]:
    env = env | {"FLUXORA_HOME": str(home)}
    env.pop("FLUXORA_FAILPOINT", None)
    if failpoint:
        env["FLUXORA_FAILPOINT"] = failpoint
    return subprocess.run(
        [sys.executable, "-c", code, *overrides], env=env, capture_output=True, text=True, timeout=900, check=False
    )


def _registry_state(home: Home) -> dict[str, Any]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=home.mlflow_tracking_uri, registry_uri=home.mlflow_tracking_uri)
    versions = {str(v.version): dict(v.tags or {}) for v in client.search_model_versions(f"name = '{NAME}'")}
    aliases = {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}
    return {"versions": versions, "aliases": aliases, "history": registry.history(home, NAME)}


@pytest.mark.parametrize("failpoint", BOUNDARIES)
def test_sigkill_then_rerun_registers_once_and_moves_champion_once(
    failpoint: str, prepared: Home, prefect_env: dict[str, str], tmp_path: Path, fault_record: FaultRecorder
) -> None:
    home = Home(tmp_path / "home")
    shutil.copytree(prepared.root, home.root)
    before = _registry_state(home)
    assert list(before["versions"]) == ["1"] and before["aliases"]["champion"] == "1"

    killed = _run(prefect_env, home.root, failpoint)
    assert killed.returncode == -signal.SIGKILL, f"{failpoint} was not reached:\n{killed.stderr[-3000:]}"

    rerun = _run(prefect_env, home.root, None)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]

    after = _registry_state(home)
    fault_record(cases=1, duplicate_versions=max(0, len(after["versions"]) - 2))  # v1 was there before
    assert sorted(after["versions"]) == ["1", "2"], "exactly one new version"
    new = after["versions"]["2"]
    assert new[registry.COMPLETE_TAG] == "true"
    assert new[registry.PROMOTE_TAG] == "true", new[registry.GATE_TAG]
    assert after["aliases"] == {"champion": "2", "challenger": "2"}
    moves = after["history"][len(before["history"]) :]
    assert [(m["from"], m["to"]) for m in moves] == [("1", "2")], "the champion moved exactly once, from v1 to v2"
    outputs = json.loads((home.metrics_dir / "train_run.json").read_text())
    assert outputs["model"]["version"] == "2"


def test_pipeline_rerun_after_a_kill_redoes_only_what_is_missing(
    prefect_env: dict[str, str], tmp_path: Path, fault_record: FaultRecorder
) -> None:
    """Killed after features: the rerun reuses validation and features (same data version and
    config hash) and does the rest; one version is registered."""
    home = Home(tmp_path / "home")
    killed = _run(prefect_env, home.root, "after:features", PIPELINE, TINY_OVERRIDES)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (home.metrics_dir / "train_run.json").exists()

    rerun = _run(prefect_env, home.root, None, PIPELINE, TINY_OVERRIDES)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    line = next(x for x in rerun.stdout.splitlines() if x.startswith("RESULTS "))
    results = json.loads(line.removeprefix("RESULTS "))
    assert results["validate"].get("cached") is True
    assert results["features"].get("cached") is True
    assert "cached" not in results["ingest"]  # the source is read again: it defines the data version
    versions = sorted(_registry_state(home)["versions"])
    fault_record(cases=1, duplicate_versions=max(0, len(versions) - 1))
    assert results["train"]["model"]["version"] == "1" and results["train"]["model"]["created"] is True
    assert versions == ["1"]
