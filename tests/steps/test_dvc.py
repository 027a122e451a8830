"""DVC as its users drive it: `dvc repro` runs the same steps as stages, in a scratch copy of the
project on tiny data; then `dvc status`, `dvc metrics show`, `dvc plots show`, and an experiment
(`dvc exp run -S model=ridge`, Hydra composing conf/) compared by `dvc exp show`. And the
committed `dvc.lock` matches `dvc.yaml` and `params.yaml` (no repro needed to check that)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import TINY_OVERRIDES
from fluxora.config import compose, to_yaml
from fluxora.paths import project_root

pytestmark = pytest.mark.integration


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("FLUXORA_HOME", None)  # the stages pin their own home (.fluxora in the project)
    return subprocess.run(
        [str(bin_dir / "dvc"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )


def _git(project: Path, *args: str) -> None:
    ident = ["-c", "user.name=fluxora-test", "-c", "user.email=test@fluxora.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", *ident, *args], cwd=project, check=True, capture_output=True, text=True)


def _copy_project(target: Path, *files: str) -> Path:
    """What a clone holds of the DVC side (a DVC project as committed, no `dvc init`): conf/, the
    feature repo, the Hydra plugin, dvc.yaml and .dvc/ (config with Hydra enabled, the plot
    template), plus `files`; a git repository as `dvc exp` needs."""
    root = project_root()
    target.mkdir()
    for name in ("conf", "feature_repo", "hydra_plugins", ".dvc"):
        shutil.copytree(root / name, target / name, ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore", *files):
        shutil.copy(root / name, target / name)
    return target


def _stage_paths(stage: dict[str, Any], *kinds: str) -> set[str]:
    found = set()
    for kind in kinds:
        for entry in stage.get(kind, []):
            found.add(entry if isinstance(entry, str) else (entry["path"] if "path" in entry else next(iter(entry))))
    return found


def test_committed_dvc_lock_is_current(tmp_path: Path) -> None:
    """`dvc status` in a fresh copy (nothing produced yet) may only miss the outputs under .fluxora:
    any changed parameter, command or tracked file means `dvc.lock` is stale (run `make repro`)."""
    root = project_root()
    project = _copy_project(tmp_path / "fresh", "dvc.lock", "params.yaml")
    _git(project, "init", "-q")
    status = _dvc(project, "status", "--json")
    assert status.returncode == 0, status.stderr
    stale = []
    for stage, changes in json.loads(status.stdout).items():
        for change in changes:
            if not isinstance(change, dict):  # e.g. "changed command", "always changed"
                stale.append(f"{stage}: {change}")
                continue
            for kind, paths in change.items():
                for path, what in paths.items():
                    produced = path.startswith(".fluxora/") and what in ("deleted", "not in cache")
                    if not produced:
                        stale.append(f"{stage}: {kind} {path}: {what}")
    assert not stale, "dvc.lock is stale (run `make repro` and commit dvc.lock):\n" + "\n".join(stale)

    declared = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    locked = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(locked) == set(declared), "dvc.lock lacks a stage or keeps a removed one"
    for name, stage in declared.items():
        assert _stage_paths(locked[name], "outs") == _stage_paths(stage, "outs", "metrics", "plots"), name
        assert _stage_paths(locked[name], "deps") == _stage_paths(stage, "deps"), name


def _tiny_conf(project: Path) -> None:
    """The copy's conf/ on tiny data: the values in config.yaml itself (it comes last in the
    defaults list), so Hydra's composition for `dvc exp run` gives the same tiny config."""
    from omegaconf import OmegaConf

    tiny = OmegaConf.to_yaml(OmegaConf.from_dotlist(TINY_OVERRIDES))
    config = project / "conf" / "config.yaml"
    config.write_text(config.read_text() + "\n# tiny data for the test\n" + tiny)
    (project / "params.yaml").write_text(to_yaml(compose(config_dir=project / "conf")))
    assert compose(config_dir=project / "conf") == compose(TINY_OVERRIDES)


def _data(shown: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in shown.values())["data"]


def test_dvc_repro_plots_metrics_and_an_experiment(tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "project")
    _tiny_conf(project)
    _git(project, "init", "-q")

    first = _dvc(project, "repro")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage in ("ingest", "validate", "features", "train", "monitor"):
        assert f"Running stage '{stage}'" in first.stdout
    status = _dvc(project, "status")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout  # the lock it wrote is current

    # Readable metrics: one row per file, the leaderboard a row per model.
    shown = _dvc(project, "metrics", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    metrics = {path: entry["data"] for path, entry in _data(json.loads(shown.stdout)).items()}
    board = {Path(p).stem: m for p, m in metrics.items() if p.startswith(".fluxora/metrics/backtest/")}
    assert set(board) == {"ridge", "xgboost", "seasonal_naive_daily", "seasonal_naive_weekly"}  # model=auto
    assert sorted(m["rank"] for m in board.values()) == [1, 2, 3, 4]
    train = metrics[".fluxora/metrics/train.json"]
    winner = min(("ridge", "xgboost"), key=lambda m: board[m]["mae"])  # what the default registers
    assert (
        train["mae"]
        == board[winner]["mae"]
        < min(board["seasonal_naive_daily"]["mae"], board["seasonal_naive_weekly"]["mae"])
    )
    assert {"drifted", "retrain"} <= set(metrics[".fluxora/metrics/monitor/drift.json"])
    assert all(len(m) <= 10 for m in metrics.values())  # no 30-column row
    table = _dvc(project, "metrics", "show", ".fluxora/metrics/backtest")
    assert table.returncode == 0 and len(table.stdout.strip().splitlines()) == 5, table.stdout

    # Plots render: vega specs with data for both, no errors.
    plots = _dvc(project, "plots", "show", "--json")
    assert plots.returncode == 0, plots.stderr
    rendered = json.loads(plots.stdout)
    assert not rendered.get("errors"), rendered.get("errors")
    for name, fields in (("forecast_vs_actual", {"actual", "forecast"}), ("error_by_horizon", {"model"})):
        (spec,) = rendered["data"][name]
        values = spec["content"]["data"]["values"]
        assert fields <= {v["field"] for v in values} and len(values) > 24, name
    fva = rendered["data"]["forecast_vs_actual"][0]["content"]
    assert fva["encoding"]["x"]["type"] == "temporal"

    second = _dvc(project, "repro")
    assert second.returncode == 0
    assert "Running stage" not in second.stdout  # nothing changed, nothing re-runs

    # An experiment: Hydra composes conf/ with `model=ridge` into params.yaml; only what reads
    # the model re-runs, and `dvc exp show` puts both side by side.
    params_before = (project / "params.yaml").read_text()
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "baseline")
    exp = _dvc(project, "exp", "run", "-S", "model=ridge", "-n", "ridge")
    assert exp.returncode == 0, exp.stdout[-3000:] + exp.stderr[-3000:]
    assert "Running stage 'train'" in exp.stdout and "Running stage 'ingest'" not in exp.stdout
    assert yaml.safe_load((project / "params.yaml").read_text())["model"]["name"] == "ridge"
    assert params_before == to_yaml(compose(config_dir=project / "conf"))  # export == DVC's composition
    table = _dvc(project, "exp", "show", "--json")
    assert table.returncode == 0, table.stderr
    rows = _exp_rows(json.loads(table.stdout))
    assert sorted(r["params"]["model"]["name"] for r in rows) == ["auto", "ridge"]
    assert all(r["metrics"]["mae"] > 0 and r["metrics"]["model_version"] >= 1 for r in rows)
    diff = _dvc(project, "plots", "diff", "HEAD", "--json")  # the baseline's plot against the experiment's
    assert diff.returncode == 0 and not json.loads(diff.stdout).get("errors"), diff.stdout[-2000:]


def _exp_rows(shown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The committed baseline and each experiment from `dvc exp show --json`, with their params
    and train metrics."""
    rows = []
    for entry in shown:
        if entry["rev"] == "workspace":
            continue
        for rev in [entry, *[e for exp in entry.get("experiments") or [] for e in exp.get("revs", [])]]:
            data = rev["data"]
            rows.append(
                {
                    "name": rev.get("name") or rev["rev"],
                    "params": data["params"]["params.yaml"]["data"],
                    "metrics": data["metrics"][".fluxora/metrics/train.json"]["data"],
                }
            )
    return rows
