"""Versioned data: the committed DVC remote round-trips raw and validated data (push, lose, pull),
and the data version MLflow runs are tagged with is DVC's hash of the validated data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY_OVERRIDES
from fluxora.config import compose, to_yaml
from fluxora.data.io import file_digest
from fluxora.paths import project_root

pytestmark = pytest.mark.integration

DATA = (".fluxora/data/raw.parquet", ".fluxora/data/validated.parquet", ".fluxora/data/quarantine.parquet")


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("FLUXORA_HOME")
    command = [str(bin_dir / "dvc"), *args]
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


def test_dvc_push_pull_round_trip_with_the_committed_remote(tmp_path: Path) -> None:
    root, project = project_root(), tmp_path / "project"
    project.mkdir()
    for name in ("conf", "feature_repo"):
        shutil.copytree(root / name, project / name)
    shutil.copy(root / "dvc.yaml", project / "dvc.yaml")
    (project / "params.yaml").write_text(to_yaml(compose(TINY_OVERRIDES)))
    _dvc(project, "init", "--no-scm", "-q")
    shutil.copy(root / ".dvc" / "config", project / ".dvc" / "config")  # the remote as committed
    _dvc(project, "config", "core.no_scm", "true")  # the scratch copy is not a git checkout
    remote = (project / ".dvc" / remote_url(root / ".dvc" / "config")).resolve()

    _dvc(project, "repro", "validate")
    digests = {path: file_digest(project / path) for path in DATA}
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    locked = {o["path"]: o["md5"] for o in lock["stages"]["validate"]["outs"]}
    assert locked[".fluxora/data/validated.parquet"] == digests[".fluxora/data/validated.parquet"]  # the run tag

    _dvc(project, "push", "ingest", "validate")
    assert sum(1 for p in remote.rglob("*") if p.is_file()) >= len(DATA)
    shutil.rmtree(project / ".dvc" / "cache")
    for path in DATA:
        (project / path).unlink()

    _dvc(project, "pull", "ingest", "validate")  # the stages that ran; later ones have no outputs yet
    assert {path: file_digest(project / path) for path in DATA} == digests


def remote_url(config: Path) -> str:
    """The default remote's url from a DVC config file (INI format)."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read(config)
    name = parser["core"]["remote"]
    return parser[f"'remote \"{name}\"'"]["url"]
