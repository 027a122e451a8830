"""`dvc repro` runs the same steps as stages, in a scratch copy of the project on tiny data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import compose, to_yaml
from fluxora.paths import project_root

pytestmark = pytest.mark.integration


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("FLUXORA_HOME")  # the stages pin their own home (.fluxora in the project)
    return subprocess.run(
        [str(bin_dir / "dvc"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )


def test_dvc_repro_runs_every_stage_and_is_reproducible(tmp_path: Path) -> None:
    root = project_root()
    project = tmp_path / "project"
    project.mkdir()
    for name in ("conf", "feature_repo"):
        shutil.copytree(root / name, project / name)
    shutil.copy(root / "dvc.yaml", project / "dvc.yaml")
    (project / "params.yaml").write_text(to_yaml(compose(TINY_OVERRIDES)))
    assert _dvc(project, "init", "--no-scm", "-q").returncode == 0

    first = _dvc(project, "repro")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage in ("ingest", "validate", "features", "train", "monitor"):
        assert f"Running stage '{stage}'" in first.stdout

    shown = _dvc(project, "metrics", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    metrics = json.loads(shown.stdout)
    train = next(v for v in metrics.values())["data"][".fluxora/metrics/train.json"]["data"]
    assert train["mae"] < min(train["naive_daily_mae"], train["naive_weekly_mae"])

    second = _dvc(project, "repro")
    assert second.returncode == 0
    assert "Running stage" not in second.stdout  # nothing changed, nothing re-runs
