"""Two runs at once against one home's SQLite registry (issue 17, item 2): the second registers
nothing (it reports the concurrent run's version), and two processes opening a new, empty store
at once both succeed. Real processes and a real MLflow store; no training (a contract-only
model folder is enough to log and register)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fault_record import FaultRecorder

from fluxora import registry
from fluxora.paths import Home, project_root

pytestmark = pytest.mark.fault

DATA_VERSION = "d" * 32

# argv: home, mode (open | register), this process's name, how many processes meet at the barrier
CHILD = r"""
import json, sys, time
from pathlib import Path

home_dir, mode, me, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from fluxora.paths import Home
from fluxora.runtime import prepare

home = prepare(Home(Path(home_dir)))
import mlflow.store.db.utils as db_utils

from fluxora import registry
from fluxora.config import compose
from fluxora.models.selection import GateDecision


def barrier(tag, timeout):
    sync = Path(home_dir) / "sync"
    sync.mkdir(exist_ok=True)
    (sync / f"{tag}-{me}").touch()
    deadline = time.monotonic() + timeout
    while len(list(sync.glob(f"{tag}-*"))) < n and time.monotonic() < deadline:
        time.sleep(0.02)


if mode == "open":
    create = db_utils._initialize_tables

    def both_inside(engine):
        # MLflow found no tables and is about to create them: wait (briefly) for the other process
        # to get here too, so both create at once, as two `fluxora run`s on a new home do. With
        # the store lock only one process ever gets here.
        barrier("inside", 5)
        create(engine)

    db_utils._initialize_tables = both_inside
    barrier("open", 120)
    registry.find_version(home, "fluxora-load-forecaster", "x", "y")
    print(json.dumps({"opened": True}))
else:
    cfg = compose([])
    name = cfg.train.registered_model_name
    model_dir = Path(home_dir) / f"model-{me}"
    model_dir.mkdir()
    (model_dir / "contract.json").write_text(json.dumps({"model": "ridge", "weather": "persistence"}))
    data_version = "d" * 32
    assert registry.find_version(home, name, data_version, cfg.fingerprint()) is None
    barrier("register", 120)  # both looked and found nothing, as two runs that then train
    decision = GateDecision(True, "test", "mae", 1.0, 2.0, None)
    print(json.dumps(registry.log_and_register(home, cfg, model_dir, data_version, {"mae": 1.0}, decision).to_dict()))
"""


def _race(home: Path, mode: str, n: int = 2) -> list[dict[str, Any]]:
    env = os.environ | {"FLUXORA_HOME": str(home), "FLUXORA_USER": "race"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), mode, f"p{i}", str(n)],
            cwd=project_root(),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"a racing process failed:\n{err[-3000:]}"
        assert "Traceback" not in err, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_processes_opening_a_new_store_at_once_both_succeed(tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    assert _race(home, "open") == [{"opened": True}, {"opened": True}]
    assert Home(home).mlflow_db.is_file()


def test_two_runs_registering_the_same_data_and_config_at_once_make_one_version(
    tmp_path: Path, fault_record: FaultRecorder
) -> None:
    home = Home(tmp_path / "home").ensure()
    registry.configure(home)  # the store exists already: this test is about registration alone
    results = _race(home.root, "register")
    versions_made = len(registry.configure(home).search_model_versions("name = 'fluxora-load-forecaster'"))
    fault_record(cases=len(results), duplicate_versions=max(0, versions_made - 1))
    created = [r for r in results if r["created"]]
    reused = [r for r in results if not r["created"]]
    assert len(created) == 1 and len(reused) == 1, results
    assert reused[0]["version"] == created[0]["version"] and reused[0]["run_id"] == created[0]["run_id"]
    assert registry.CONCURRENT in reused[0]["reason"]
    client = registry.configure(home)
    versions = client.search_model_versions("name = 'fluxora-load-forecaster'")
    assert [str(v.version) for v in versions] == [created[0]["version"]]
    assert registry.champion(home, "fluxora-load-forecaster")["version"] == created[0]["version"]  # type: ignore[index]
    assert len(registry.history(home, "fluxora-load-forecaster")) == 1  # promoted once


def test_a_version_that_lost_the_race_on_a_shared_server_deletes_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecorder
) -> None:
    """Runs on different machines share no lock: each re-checks after registering, and the later
    version with the same data version and config hash is deleted before it gets an alias.
    Simulated on SQLite by a second registration whose look-up missed the first (no lock)."""
    from contextlib import nullcontext

    import mlflow

    from fluxora.config import compose
    from fluxora.models.selection import GateDecision
    from fluxora.runtime import prepare

    home = prepare(Home(tmp_path / "home"))
    cfg = compose([])
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "contract.json").write_text(json.dumps({"model": "ridge", "weather": "persistence"}))
    decision = GateDecision(True, "test", "mae", 1.0, 2.0, None)
    first = registry.log_and_register(home, cfg, model_dir, DATA_VERSION, {"mae": 1.0}, decision)

    monkeypatch.setattr(registry, "registration_lock", lambda *a: nullcontext())  # another machine
    monkeypatch.setattr(registry, "find_version", lambda *a: None)  # looked before `first` existed
    late = registry.log_and_register(home, cfg, model_dir, DATA_VERSION, {"mae": 1.0}, decision)
    assert not late.created and late.version == first.version and registry.CONCURRENT in late.reason
    client = registry.configure(home)
    versions = client.search_model_versions(f"name = '{cfg.train.registered_model_name}'")
    fault_record(cases=2, duplicate_versions=max(0, len(versions) - 1))
    assert [str(v.version) for v in versions] == [first.version]
    [loser] = [
        r
        for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if r.info.run_id != first.run_id
    ]
    assert loser.data.tags[registry.DUPLICATE_TAG] == f"{cfg.train.registered_model_name}/{first.version}"
    assert registry.champion(home, cfg.train.registered_model_name)["challenger"] == first.version  # type: ignore[index]
