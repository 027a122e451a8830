"""Configuration: composition, overrides, clear errors, and params.yaml kept in sync with conf/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fluxora.config import FluxoraConfig, compose, conf_dir, from_params, to_yaml
from fluxora.errors import ConfigError
from fluxora.paths import project_root


def test_default_config_is_typed() -> None:
    cfg = compose()
    assert isinstance(cfg, FluxoraConfig)
    assert cfg.model.name == "xgboost"
    assert cfg.train.horizon == 24
    assert isinstance(cfg.model.learning_rate, float)


def test_overrides_apply_with_types() -> None:
    cfg = compose(["model=xgboost", "train.horizon=48", "data.n_series=5", "model.learning_rate=0.1"])
    assert (cfg.train.horizon, cfg.data.n_series, cfg.model.learning_rate) == (48, 5, 0.1)


@pytest.mark.parametrize("group", sorted(p.name for p in conf_dir().iterdir() if p.is_dir()))
def test_every_group_option_composes(group: str) -> None:
    for option in sorted((conf_dir() / group).glob("*.yaml")):
        cfg = compose([f"{group}={option.stem}"])
        assert isinstance(cfg, FluxoraConfig)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.horizn=3", "train.horizn"),
        ("train.horizon=abc", "train.horizon"),
        ("data.n_series=2.5", "data.n_series"),
        ("model=nosuchmodel", "model"),
        ("nosuchgroup.x=1", "nosuchgroup"),
        ("train.horizon", "train.horizon"),
    ],
)
def test_bad_override_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        compose([override])
    message = str(info.value)
    assert key in message
    assert "\n" not in message


def test_fingerprint_is_stable_and_sensitive() -> None:
    assert compose().fingerprint() == compose().fingerprint()
    assert compose().fingerprint() != compose(["train.horizon=48"]).fingerprint()


def test_committed_params_yaml_matches_conf() -> None:
    committed = (project_root() / "params.yaml").read_text()
    assert committed == to_yaml(compose()), "params.yaml is stale: run `fluxora config export`"


def test_params_round_trip(tmp_path: Path) -> None:
    cfg = compose(["train.horizon=36"])
    path = tmp_path / "params.yaml"
    path.write_text(to_yaml(cfg))
    assert from_params(path) == cfg


def test_params_with_wrong_type_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  horizon: soon\n")
    with pytest.raises(ConfigError, match="horizon"):
        from_params(path)


def test_dvc_stage_params_exist_in_params_yaml() -> None:
    params = yaml.safe_load((project_root() / "params.yaml").read_text())
    stages = yaml.safe_load((project_root() / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert part in node, f"stage {name} lists {key}, missing from params.yaml"
                node = node[part]


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"FLUXORA_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "fluxora.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=project_root(),
        timeout=120,
    )


def test_cli_bad_override_exits_nonzero_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = _cli("run", "train.horizn=3", home=home)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.horizn" in lines[0]
    assert not home.exists()


def test_cli_config_export_check(tmp_path: Path) -> None:
    assert _cli("config", "export", "--check", home=tmp_path).returncode == 0
    stale = tmp_path / "params.yaml"
    stale.write_text("train:\n  horizon: 1\n")
    result = _cli("config", "export", "--check", "--output", str(stale), home=tmp_path)
    assert result.returncode == 1 and "out of date" in result.stderr


def test_cli_takes_overrides_before_and_after_options() -> None:
    from fluxora.cli.parser import parse

    args = parse(["trigger", "train", "--wait", "model=prophet", "train.horizon=48"])
    assert args.wait is True and args.overrides == ["model=prophet", "train.horizon=48"]
    args = parse(["status", "infra=production", "--json", "serve=production"])
    assert args.json is True and args.overrides == ["infra=production", "serve=production"]
    with pytest.raises(SystemExit):
        parse(["trigger", "train", "--no-such-option"])
