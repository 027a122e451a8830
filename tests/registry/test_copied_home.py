"""A copied FLUXORA_HOME keeps its artifacts to itself (issue 17, item 9): MLflow records absolute
artifact locations, so a `cp -r` of a home used to log new runs into the original's folder."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from fluxora import registry
from fluxora.config import compose
from fluxora.models.selection import GateDecision
from fluxora.paths import Home
from fluxora.runtime import prepare


def _locations(home: Home) -> list[str]:
    with sqlite3.connect(home.mlflow_db) as db:
        rows = db.execute(
            "SELECT artifact_location FROM experiments WHERE name != 'Default' UNION ALL "
            "SELECT artifact_uri FROM runs UNION ALL SELECT storage_location FROM model_versions"
        ).fetchall()
    return [r[0] for r in rows]


def test_a_copied_home_writes_and_reads_artifacts_in_the_copy(tmp_path: Path) -> None:
    cfg = compose([])
    name = cfg.train.registered_model_name
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "contract.json").write_text(json.dumps({"model": "ridge", "weather": "persistence"}))
    decision = GateDecision(True, "test", "mae", 1.0, 2.0, None)

    original = prepare(Home(tmp_path / "original"))
    first = registry.log_and_register(original, cfg, model_dir, "a" * 32, {"mae": 1.0}, decision)
    before = sorted(p.relative_to(original.root) for p in original.mlflow_artifacts.rglob("*"))
    recorded = _locations(original)

    copy = prepare(Home(tmp_path / "copy"))
    shutil.rmtree(copy.root)
    shutil.copytree(original.root, copy.root)
    second = registry.log_and_register(copy, cfg, model_dir, "b" * 32, {"mae": 0.5}, decision)

    # nothing new in the original, its store untouched; every location of the copy is in the copy
    assert sorted(p.relative_to(original.root) for p in original.mlflow_artifacts.rglob("*")) == before
    assert _locations(original) == recorded
    assert all(
        loc.startswith(copy.mlflow_artifacts.as_uri() + "/") or loc == copy.mlflow_artifacts.as_uri()
        for loc in _locations(copy)
    ), _locations(copy)
    # later artifacts of a run made before the copy (the monitor step's reports) land in the copy too
    report = tmp_path / "report.json"
    report.write_text("{}")
    for run_id in (first.run_id, second.run_id):
        registry.log_artifacts(copy, run_id, [report], "monitor")
        assert (copy.mlflow_artifacts / run_id / "artifacts" / "monitor" / "report.json").is_file()
        assert not (original.mlflow_artifacts / run_id).exists()

    # the copy still serves its earlier versions from its own folder, even with the original gone
    shutil.rmtree(original.root)
    version, local = registry.download_champion(copy.mlflow_tracking_uri, name, tmp_path / "cache")
    assert version == second.version and any(local.rglob("contract.json"))
    client = registry.configure(copy)
    first_source = client.get_model_version_download_uri(name, "1")
    assert first_source.startswith(copy.mlflow_artifacts.as_uri())
