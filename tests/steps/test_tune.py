"""`fluxora tune`: a real (tiny) Optuna study on the synthetic data, its MLflow runs, the result
file, resuming after Ctrl-C, seeding, the windows it tunes on, and one-line errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from conftest import TINY_OVERRIDES
from fluxora import registry, steps
from fluxora.config import FluxoraConfig, compose
from fluxora.errors import ConfigError
from fluxora.models import backtest as bt
from fluxora.models import tuning
from fluxora.paths import Home
from fluxora.runtime import prepare

# Two windows, a small space (few trees) so a trial takes well under a second.
TUNE = [*TINY_OVERRIDES, "tune.windows=2", "tune.space.n_estimators=[10,40]", "tune.startup_trials=2"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """One home for the module (a new MLflow store takes seconds to create); each test tunes its
    own study (`tune.study`) in it and reads only that study's runs."""
    cfg = compose(TUNE)
    made = prepare(Home(tmp_path_factory.mktemp("tune-home")), cfg)
    for step in (steps.ingest, steps.validate):
        step(cfg, made)
    return made


def _cfg(study: str, *more: str) -> FluxoraConfig:
    return compose([*TUNE, f"tune.study={study}", *more])


def _runs(home: Home, cfg: FluxoraConfig) -> tuple[list[mlflow.entities.Run], list[mlflow.entities.Run]]:
    """The study's parent runs and trial runs."""
    client = registry.configure(home)
    experiment = client.get_experiment_by_name(cfg.train.experiment)
    found = client.search_runs([experiment.experiment_id], f"tags.`{registry.STUDY_TAG}` = '{cfg.tune.study}'")
    parents = [r for r in found if r.data.tags.get(registry.KIND_TAG) == "tune"]
    trials = [r for r in found if r.data.tags.get(registry.KIND_TAG) == "trial"]
    return parents, trials


def test_a_tiny_study_logs_trials_writes_the_result_and_its_overrides_compose(home: Home) -> None:
    cfg = _cfg("tiny", "tune.trials=3")
    seen: list[str] = []
    result = steps.tune(cfg, home, progress=seen.append)

    assert result.trials == 3 and not result.interrupted
    assert [m for m in seen if m.startswith("tune: trial ")][-1].startswith("tune: trial 3/3 ")
    assert result.configured_value is not None and result.value <= result.configured_value  # trial 0 is the config
    parents, trials = _runs(home, cfg)
    assert [p.info.run_id for p in parents] == [result.run_id] and parents[0].info.status == "FINISHED"
    assert len(trials) == 3 and {t.data.tags["mlflow.parentRunId"] for t in trials} == {result.run_id}
    best = min(trials, key=lambda t: t.data.metrics["mae"])
    assert best.data.metrics["mae"] == pytest.approx(result.value)
    assert {k: best.data.params[f"model.{k}"] for k in result.params} == {k: str(v) for k, v in result.params.items()}
    assert parents[0].data.metrics["best_mae"] == pytest.approx(result.value)
    assert parents[0].data.tags["best.model.max_depth"] == str(result.params["max_depth"])

    written = yaml.safe_load(home.tuned("xgboost").read_text())
    assert written["overrides"] == result.overrides and written["params"] == result.params
    assert written["windows"]["last"] < written["windows"]["gate_first_origin"]
    tuned = compose([*TINY_OVERRIDES, *result.overrides])  # what `fluxora run <overrides>` composes
    assert {k: getattr(tuned.model, k) for k in result.params} == result.params


def test_ctrl_c_keeps_finished_trials_and_a_rerun_continues_the_study(home: Home) -> None:
    cfg = _cfg("resumed", "tune.trials=3")

    def interrupt_after_two(message: str) -> None:
        if message.startswith("tune: trial 2/3"):
            raise KeyboardInterrupt  # as Ctrl-C between two trials

    first = steps.tune(cfg, home, progress=interrupt_after_two)
    assert first.interrupted and first.trials == 2
    written = yaml.safe_load(home.tuned("xgboost").read_text())  # the best of the finished trials
    assert (written["study"], written["trials"], written["interrupted"]) == ("resumed", 2, True)
    parents, _ = _runs(home, cfg)
    assert parents[0].info.status == "KILLED"

    second = steps.tune(cfg, home)
    assert not second.interrupted and second.trials == 3 and second.study == first.study
    assert second.run_id == first.run_id  # one parent run per study
    parents, trials = _runs(home, cfg)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(trials) == 3
    assert len({tuple(sorted(t.data.params.items())) for t in trials}) == 3  # resumed, not repeated


def test_the_same_seed_gives_the_same_trials(home: Home) -> None:
    def trials_of(study: str, seed: int) -> list[dict[str, str]]:
        cfg = _cfg(study, "tune.trials=3", "tune.start_from_config=false", f"tune.seed={seed}")
        steps.tune(cfg, home)
        _, runs = _runs(home, cfg)
        return [dict(r.data.params) for r in sorted(runs, key=lambda r: int(r.data.tags[registry.TRIAL_TAG]))]

    first = trials_of("seeded-a", 7)
    assert len(first) == 3 and trials_of("seeded-b", 7) == first
    assert trials_of("seeded-c", 8) != first


def test_tuning_windows_end_where_the_gates_begin(home: Home) -> None:
    from fluxora.steps.features import panel as stored_panel

    cfg = compose(TUNE)
    panel = stored_panel(home)
    gate = bt.resolve(cfg, panel, weather=cfg.train.weather, horizon=cfg.train.horizon)
    spec = tuning.windows(gate, panel, 3, 12)
    assert len(spec.origins) == 3 and np.all(np.diff(spec.origins) == np.timedelta64(12, "h"))
    last_target = spec.origins[-1] + spec.horizon * panel.step
    assert last_target == gate.origins[0]  # the latest tuning target is the gate's origin, never after it
    assert replace(spec, origins=gate.origins) == gate  # everything else as the gate scores


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("tune.trials=0", "tune.trials"),
        ("tune.timeout_s=-1", "tune.timeout_s"),
        ("tune.windows=0", "tune.windows"),
        ("tune.metric=coverage_80", "tune.metric"),
        ("train.promotion_metric=r2", "train.promotion_metric"),
        ("tune.space.learning_rate=[0.3,0.01]", "tune.space.learning_rate"),
        ("tune.space.subsample=[0.5,1.5]", "tune.space.subsample"),
        ("tune.space.max_depth=[3]", "tune.space.max_depth"),
        ("tune.space.min_child_weight=[0,10]", "tune.space.min_child_weight"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_key(override: str, key: str) -> None:
    cfg = compose([override])
    with pytest.raises(ConfigError) as caught:
        tuning.check(cfg.tune, cfg.train.promotion_metric)
    message = str(caught.value)
    assert key in message and "\n" not in message


def test_the_command_refuses_a_bad_setting_before_writing(tmp_path: Path, monkeypatch, capsys) -> None:
    from fluxora.cli import EXIT_CONFIG, main

    monkeypatch.setenv("FLUXORA_HOME", str(tmp_path / "home"))
    assert main(["tune", *TINY_OVERRIDES, "tune.space.colsample_bytree=[0.9,0.2]"]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: invalid configuration: tune.space.colsample_bytree:") and "\n" not in err
    assert not (tmp_path / "home" / "data" / "raw.parquet").exists()
    assert not (tmp_path / "home" / "tuning").exists()


def test_an_empty_space_is_refused() -> None:
    empty = [f"tune.space.{k}=[]" for k in tuning._DOMAINS]
    cfg = compose(empty)
    with pytest.raises(ConfigError, match=r"tune\.space: every range is \[\]"):
        tuning.check(cfg.tune, cfg.train.promotion_metric)


def test_tune_settings_do_not_change_the_config_hash_registered_versions_are_keyed_on() -> None:
    base = compose([]).fingerprint()
    assert compose(["tune.trials=5", "tune.space.max_depth=[2,4]"]).fingerprint() == base
    assert compose(["model.max_depth=4"]).fingerprint() != base
