"""Configuration: composition, overrides, clear errors, and params.yaml kept in sync with conf/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fluxora.config import (
    MODEL_SCHEMAS,
    FluxoraConfig,
    ModelConfig,
    compose,
    conf_dir,
    from_params,
    model_keys,
    to_view_yaml,
    to_yaml,
)
from fluxora.errors import ConfigError
from fluxora.paths import project_root


def test_default_config_is_typed() -> None:
    cfg = compose()
    assert isinstance(cfg, FluxoraConfig)
    assert cfg.model.name == "auto" and cfg.model.candidates == ["ridge", "xgboost"]
    assert cfg.train.horizon == "24h"  # a day ahead at any resolution
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
        ("data.delimiter=;", "quote a value"),
    ],
)
def test_bad_override_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        compose([override])
    message = str(info.value)
    assert key in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("+foo=1", "valid keys at the top: data, features, model"),
        ("foo=1", "valid keys at the top: data, features, model"),
        ("+train.horizn=3", "did you mean train.horizon?"),
        ("train.horizn=3", "did you mean train.horizon?"),
        ("+model.ridge_alpa=2", "did you mean model.ridge_alpha?"),
        ("+data.columns.lod=x", "did you mean data.columns.load?"),
    ],
)
def test_unknown_key_is_refused_with_the_closest_names(override: str, expected: str) -> None:
    """With or without `+`: Hydra would add the key and the schema would drop it silently."""
    with pytest.raises(ConfigError) as info:
        compose([override])
    message = str(info.value)
    assert "unknown key" in message and repr(override) in message and expected in message
    assert "\n" not in message


def test_dict_fields_still_take_new_keys() -> None:
    cfg = compose(['+data.weather.locations.series_000="52.5,13.4"'])
    assert cfg.data.weather.locations == {"series_000": "52.5,13.4"}


def test_unknown_group_option_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError) as info:
        compose(["model=xgbost"])
    message = str(info.value)
    options = sorted(p.stem for p in (conf_dir() / "model").glob("*.yaml"))
    assert f"did you mean model=xgboost? Available: {', '.join(options)}" in message
    listed = f"; available: {', '.join(options)}$"
    with pytest.raises(ConfigError, match=f"model/zzz: unknown config group option .*{listed}"):
        compose(["model=zzz"])


def test_cli_unknown_key_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from fluxora.cli import main

    assert main(["config", "show", "+foo=1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "foo: unknown key" in captured.err


def test_every_model_option_has_a_schema_and_sets_only_its_keys() -> None:
    """conf/model/NAME.yaml may set only what NAME reads (auto: what its candidates read)."""
    for option in sorted((conf_dir() / "model").glob("*.yaml")):
        cfg = compose([f"model={option.stem}"])
        assert cfg.model.name == "auto" or cfg.model.name in MODEL_SCHEMAS
        assert all(c in MODEL_SCHEMAS for c in cfg.model.candidates)
        written = set(yaml.safe_load(option.read_text())) - {"name", "candidates", "defaults"}
        assert written <= set(model_keys(cfg.model)), f"{option.name} sets keys its model does not read"


def test_config_show_is_a_view_with_the_selected_models_settings() -> None:
    def model_section(overrides: list[str]) -> dict[str, object]:
        text = to_view_yaml(compose(overrides))
        assert text.startswith("# A view of the composed configuration") and "Do not edit" not in text
        section: dict[str, object] = yaml.safe_load(text)["model"]
        return section

    assert model_section(["model=ridge"]) == {"name": "ridge", "ridge_alpha": 1.0, "calibration_days": 28.0}
    xgb = model_section(["model=xgboost"])  # its point booster corrects ridge: ridge_alpha is read
    assert {"n_estimators", "ridge_alpha", "xgb_base"} <= set(xgb) and "prophet_max_iter" not in xgb
    auto = model_section([])  # the default: model=auto, ridge and xgboost
    assert {"candidates", "n_estimators", "ridge_alpha"} <= set(auto)
    assert "season_hours" not in auto and "prophet_max_iter" not in auto
    assert "prophet_max_iter" in model_section(["model.candidates=[ridge,xgboost,prophet]"])
    # Another model's setting moved off its default is in effect (backtest.models) and shown.
    assert model_section(["model=ridge", "model.n_estimators=9"])["n_estimators"] == 9


def test_model_config_is_the_union_of_the_model_schemas() -> None:
    from dataclasses import fields

    per_model = {f.name for schemas in MODEL_SCHEMAS.values() for s in schemas for f in fields(s)}
    assert {f.name for f in fields(ModelConfig)} == per_model | {"name", "candidates"}


def test_fingerprint_is_stable_and_sensitive() -> None:
    assert compose().fingerprint() == compose().fingerprint()
    assert compose().fingerprint() != compose(["train.horizon=48"]).fingerprint()


def test_auto_fits_each_candidate_with_its_own_settings() -> None:
    """`model=auto` composes conf/model/NAME.yaml for every model it can fit: one source."""
    from dataclasses import asdict

    auto = asdict(compose(["model=auto"]).model)
    for name in ("xgboost", "ridge", "prophet", "neural"):
        own = asdict(compose([f"model={name}"]).model)
        written = set(yaml.safe_load((conf_dir() / "model" / f"{name}.yaml").read_text())) - {"name", "candidates"}
        assert {k: auto[k] for k in written} == {k: own[k] for k in written}, name
    changed = compose(["model=auto", "model.n_estimators=7"]).model
    assert changed.n_estimators == 7


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
