"""Selection and promotion: the gate, challenger/champion aliases, idempotent registration,
promote/rollback and the promotion history, against a real SQLite-backed MLflow registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import TINY_OVERRIDES
from fluxora import registry, steps
from fluxora.config import FluxoraConfig, compose
from fluxora.models.selection import gate
from fluxora.paths import Home

# --- the gate (pure) ------------------------------------------------------------------------


def test_gate_requires_beating_naive_and_champion_by_the_margin() -> None:
    assert gate("mae", 9.0, 10.0, None, 0.05).promote  # 10 % better than naive, no champion
    assert not gate("mae", 9.6, 10.0, None, 0.05).promote  # only 4 % better than naive
    assert gate("mae", 8.0, 10.0, 9.0, 0.05).promote
    decision = gate("mae", 8.9, 10.0, 9.0, 0.05)  # beats naive, not the champion by 5 %
    assert not decision.promote and "champion" in decision.reason
    assert not gate("mae", 8.0, 10.0, 9.0, 0.05, champion_note="cannot be scored").promote
    assert not gate("mae", float("nan"), 10.0, None, 0.0).promote


# --- the registry ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    from fluxora.runtime import prepare

    mp = pytest.MonkeyPatch()
    home = prepare(Home(tmp_path_factory.mktemp("promotion-home")))
    mp.setenv("FLUXORA_HOME", str(home.root))
    mp.setenv(registry.USER_ENV, "test-user")
    cfg = compose(TINY_OVERRIDES)
    for step in (steps.ingest, steps.validate, steps.features):
        step(cfg, home)
    yield home
    mp.undo()


@pytest.fixture(scope="module")
def first(home: Home) -> steps.TrainResult:
    return steps.train(compose(TINY_OVERRIDES), home)


def _versions(home: Home, cfg: FluxoraConfig) -> list[str]:
    client = registry.configure(home)
    return sorted(str(v.version) for v in client.search_model_versions(f"name = '{cfg.train.registered_model_name}'"))


def test_first_version_is_champion_with_tags(home: Home, first: steps.TrainResult, tiny_cfg: FluxoraConfig) -> None:
    model = first.outputs()["model"]
    assert model["champion"] and model["created"]
    champ = registry.champion(home, tiny_cfg.train.registered_model_name)
    assert champ is not None and champ["version"] == model["version"] == champ["challenger"]
    tags = champ["tags"]
    assert tags["fluxora.config_hash"] == tiny_cfg.fingerprint()
    assert len(tags["fluxora.data_version"]) == 32
    assert champ["metrics"]["mae"] == pytest.approx(first.outputs()["metrics"]["mae"])  # the version's run
    assert "no champion yet" in tags["fluxora.gate"]
    [record] = registry.history(home, tiny_cfg.train.registered_model_name)
    assert record["from"] is None and record["to"] == model["version"] and record["who"] == "test-user"
    assert record["why"].startswith("gate:") and record["when"]


def test_same_data_and_config_registers_nothing_new(
    home: Home, first: steps.TrainResult, tiny_cfg: FluxoraConfig
) -> None:
    again = steps.train(compose(TINY_OVERRIDES), home)
    assert again.outputs()["model"]["version"] == first.outputs()["model"]["version"]
    assert again.outputs()["model"]["created"] is False
    assert _versions(home, tiny_cfg) == [first.outputs()["model"]["version"]]


@pytest.fixture(scope="module")
def second(home: Home, first: steps.TrainResult) -> steps.TrainResult:
    # A new config (so a new version) that cannot clear a 60 % margin over the champion.
    return steps.train(compose([*TINY_OVERRIDES, "train.promotion_margin=0.6"]), home)


def test_challenger_that_does_not_beat_the_champion_stays_challenger(
    home: Home, first: steps.TrainResult, second: steps.TrainResult, tiny_cfg: FluxoraConfig
) -> None:
    model = second.outputs()["model"]
    assert model["created"] and not model["champion"]
    assert model["version"] != first.outputs()["model"]["version"]
    champ = registry.champion(home, tiny_cfg.train.registered_model_name)
    assert champ is not None
    assert champ["version"] == first.outputs()["model"]["version"]  # unchanged
    assert champ["challenger"] == model["version"]
    # the champion was scored on the same windows as the challenger
    names = [name for name, _ in second.outputs()["leaderboard"]]
    assert f"champion_v{first.outputs()['model']['version']}" in names
    client = registry.configure(home)
    refused = client.get_model_version(tiny_cfg.train.registered_model_name, model["version"])
    gate_tag = refused.tags["fluxora.gate"]
    assert "does not beat" in gate_tag and gate_tag == model["reason"]
    # the version's description says so, with the figures it was refused on
    assert refused.description.startswith("**Stays challenger**") and gate_tag in refused.description
    assert f"| champion v{first.outputs()['model']['version']} |" in refused.description
    assert refused.tags["fluxora.gate.champion_before"] == first.outputs()["model"]["version"]


def test_promote_rollback_and_history(
    home: Home,
    first: steps.TrainResult,
    second: steps.TrainResult,
    tiny_cfg: FluxoraConfig,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fluxora.cli import main
    from fluxora.cli.render import status_text
    from fluxora.status import collect

    name = tiny_cfg.train.registered_model_name
    v1, v2 = first.outputs()["model"]["version"], second.outputs()["model"]["version"]
    assert main(["promote", v2, "--reason", "reviewed by hand"]) == 0
    assert f"v{v1} -> v{v2}" in capsys.readouterr().out
    assert registry.champion(home, name)["version"] == v2  # type: ignore[index]
    assert main(["rollback"]) == 0
    assert registry.champion(home, name)["version"] == v1  # type: ignore[index]
    records = registry.history(home, name)
    assert [(r["from"], r["to"]) for r in records[-2:]] == [(v1, v2), (v2, v1)]
    assert records[-2]["why"] == "reviewed by hand" and records[-1]["why"].startswith(f"rollback from v{v2}")
    assert all(r["who"] == "test-user" for r in records)
    text = status_text(collect(tiny_cfg, home))
    assert "promotions" in text and "reviewed by hand" in text

    assert main(["promote", "999"]) == 1
    assert "no version" in capsys.readouterr().err
    assert registry.champion(home, name)["version"] == v1  # type: ignore[index]


@pytest.mark.integration
def test_model_auto_backtests_every_candidate_and_registers_the_best(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`fluxora run model=auto`'s training step: every candidate and both baselines on the same
    windows; the registered model is the candidate with the lowest MAE, tagged as such."""
    from fluxora.runtime import prepare

    home = prepare(Home(tmp_path_factory.mktemp("auto-home")))
    cfg = compose([*TINY_OVERRIDES, "model=auto", "model.n_estimators=40", "model.prophet_train_days=30"])
    for step in (steps.ingest, steps.validate, steps.features):
        step(cfg, home)
    outputs = steps.train(cfg, home).outputs()
    board = dict(outputs["leaderboard"])
    candidates = tuple(cfg.model.candidates)  # the default: ridge and XGBoost (see conf/model/auto.yaml)
    assert len(candidates) >= 2
    assert set(board) == {*candidates, "seasonal_naive_daily", "seasonal_naive_weekly"}
    best = min(candidates, key=lambda m: board[m]["mae"])
    version = outputs["model"]["version"]
    tags = registry.configure(home).get_model_version(cfg.train.registered_model_name, version).tags
    assert tags["fluxora.model"] == best
    # each model is a child run of the training's run, its figures under the same names
    client = registry.configure(home)
    run_id = client.get_model_version(cfg.train.registered_model_name, version).run_id
    experiment = client.get_run(run_id).info.experiment_id
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{run_id}'")
    assert {c.info.run_name: c.data.metrics["mae"] for c in children} == pytest.approx(
        {m: board[m]["mae"] for m in board}
    )
    roles = {c.info.run_name: c.data.tags[registry.ROLE_TAG] for c in children}
    assert roles[best] == "winner" and {roles[m] for m in candidates if m != best} == {"candidate"}
