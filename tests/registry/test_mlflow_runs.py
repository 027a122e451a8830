"""What a training leaves in MLflow, read back from the real SQLite-backed store of a trained home:
a parent run named for what it did, one finished child run per backtested model (its parameters,
overall metrics, per-horizon metrics as steps, its plot), the training data as a dataset input,
the registered version's description (the gate's verdict and a link to the run) and its tags."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from fluxora import registry
from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.paths import Home

# Every tag a registered version carries, and who reads it: the idempotency look-up (data version,
# config hash), crash recovery (gate.promote, gate.champion_before, registered), the service and
# `fluxora status` (gate), people in the MLflow UI (model, contract, git_commit).
VERSION_TAGS = {
    "fluxora.data_version",
    "fluxora.config_hash",
    "fluxora.model",
    "fluxora.contract",
    "fluxora.git_commit",
    "fluxora.gate",
    "fluxora.gate.promote",
    "fluxora.gate.champion_before",
    "fluxora.registered",
}


@pytest.fixture(scope="module")
def logged(trained_home: Home, tiny_cfg: FluxoraConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The champion version, its run, that run's children and the leaderboard it logged."""
    client = registry.configure(trained_home)
    name = tiny_cfg.train.registered_model_name
    version = client.get_model_version_by_alias(name, registry.CHAMPION)
    parent = client.get_run(version.run_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=100
    )
    board_dir = Path(client.download_artifacts(parent.info.run_id, "backtest", str(tmp_path_factory.mktemp("lb"))))
    board = json.loads((board_dir / "leaderboard.json").read_text())
    return {"client": client, "version": version, "parent": parent, "children": children, "board": board}


def test_the_training_run_is_named_for_what_it_did(logged: dict[str, Any], tiny_cfg: FluxoraConfig) -> None:
    parent = logged["parent"]
    model = logged["version"].tags["fluxora.model"]
    auto = " (auto)" if tiny_cfg.model.name == "auto" else ""  # the default: the backtest's winner
    when = r"\d{4}-\d\d-\d\dT\d\d:\d\d"
    assert re.fullmatch(rf"train {model}{re.escape(auto)} h{tiny_cfg.train.horizon} {when}", parent.info.run_name)
    assert parent.data.tags[registry.KIND_TAG] == "train"
    assert f"**{model}**" in parent.data.tags["mlflow.note.content"]  # the run's description in the UI
    # The parent holds the trained model's figures and the gate's references, not every candidate's.
    assert {"mae", "baseline_mae", "skill_mae"} <= set(parent.data.metrics)
    assert not [k for k in parent.data.metrics if "." in k]


def test_one_child_run_per_backtested_model(logged: dict[str, Any], tiny_cfg: FluxoraConfig) -> None:
    client, board = logged["client"], logged["board"]
    children = {run.info.run_name: run for run in logged["children"]}
    assert set(children) == {e["model"] for e in board["models"]}
    winner = logged["version"].tags["fluxora.model"]
    roles = {n: run.data.tags[registry.ROLE_TAG] for n, run in children.items()}
    others = set(tiny_cfg.model.candidates) if tiny_cfg.model.name == "auto" else set()  # the default: auto
    assert roles == {n: "winner" if n == winner else "candidate" if n in others else "baseline" for n in children}
    horizon = tiny_cfg.train.horizon
    for entry in board["models"]:
        run = children[entry["model"]]
        assert run.info.status == "FINISHED" and run.data.tags[registry.KIND_TAG] == "candidate"
        # the same metric names in every child: the UI compares them side by side
        for key, value in entry["overall"].items():
            assert run.data.metrics[key] == pytest.approx(value, rel=1e-9, nan_ok=True), key
        assert run.data.metrics["rank"] == entry["rank"]
        assert run.data.params["model"] == entry["model"]
        assert run.data.params["backtest.horizon"] == str(horizon)
        history = client.get_metric_history(run.info.run_id, "horizon/mae")
        assert sorted(m.step for m in history) == list(range(1, horizon + 1))
        by_step = {m.step: m.value for m in history}
        assert all(by_step[r["step"]] == pytest.approx(r["mae"]) for r in entry["per_horizon"])
        assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == [f"plots/{entry['model']}.png"]
    assert children["xgboost"].data.params["model.n_estimators"] == str(tiny_cfg.model.n_estimators)
    assert children["seasonal_naive_weekly"].data.params["model.season_hours"] == "168"


def test_the_training_data_is_a_dataset_input(logged: dict[str, Any], trained_home: Home) -> None:
    data_version = logged["version"].tags["fluxora.data_version"]
    for run, context in [(logged["parent"], "training")] + [(c, "backtest") for c in logged["children"]]:
        [found] = run.inputs.dataset_inputs
        tags = {t.key: t.value for t in found.tags}
        assert tags == {"mlflow.data.context": context, "fluxora.data_version": data_version}
        ds = found.dataset
        assert ds.name == "load (validated)" and ds.digest == io.file_digest(trained_home.validated_data)
        assert json.loads(ds.source)["uri"].endswith("validated.parquet")
        rows = pq.ParquetFile(trained_home.validated_data).metadata.num_rows
        assert json.loads(ds.profile)["num_rows"] == rows and "series_id" in ds.schema


def test_a_parquet_dataset_describes_the_file_as_mlflow_would_the_frame(tmp_path: Path) -> None:
    """The file-backed dataset (footer + a sample) gives the schema and profile MLflow's pandas
    dataset infers from the whole frame: the same column types, nullable columns not required."""
    import warnings

    import numpy as np
    import pandas as pd
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.pandas_dataset import from_pandas

    from fluxora.mlflow_datasets import SCHEMA_SAMPLE_ROWS, ParquetFileDataset

    n = 3 * SCHEMA_SAMPLE_ROWS  # the nulls are all past the sample the types are inferred on
    temperature = np.where(np.arange(n) > 2 * SCHEMA_SAMPLE_ROWS, np.nan, 12.5)
    frame = pd.DataFrame(
        {
            "series_id": [f"s{i % 7}" for i in range(n)],
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "load": np.arange(n, dtype="float64"),
            "temperature": temperature,
            "flag": np.arange(n) % 2 == 0,
        }
    )
    path = tmp_path / "table.parquet"
    frame.to_parquet(path, row_group_size=4_096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = resolve_dataset_source(path.resolve().as_uri())
        stock = from_pandas(pd.read_parquet(path), source=path.resolve().as_uri(), name="t", digest="d")
    ours = ParquetFileDataset(path, source, "t", "d")
    assert ours.profile == stock.profile
    assert [(c.name, c.type) for c in ours.schema.inputs] == [(c.name, c.type) for c in stock.schema.inputs]
    assert {c.name: c.required for c in ours.schema.inputs} == {c.name: c.required for c in stock.schema.inputs}
    assert json.loads(ours.to_dict()["schema"]) == json.loads(stock.to_dict()["schema"])


def test_the_version_says_what_the_gate_decided_and_links_its_run(logged: dict[str, Any]) -> None:
    version, parent = logged["version"], logged["parent"]
    text = version.description
    assert text.startswith("**Promoted to champion** by the promotion gate: ")
    assert version.tags[registry.GATE_TAG] in text
    assert f"| {parent.data.metrics['mae']:.4g} |" in text and "best seasonal naive" in text
    assert f"[{parent.info.run_name}](#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id})" in text
    assert version.tags["fluxora.data_version"] in text


def test_the_version_carries_few_namespaced_tags(logged: dict[str, Any], tiny_cfg: FluxoraConfig) -> None:
    tags = logged["version"].tags
    assert set(tags) == VERSION_TAGS
    contract = json.loads(tags["fluxora.contract"])
    assert contract["model"] == tags["fluxora.model"] and contract["horizon"] == tiny_cfg.train.horizon
    assert {"weather", "temperature", "feature_service", "quantiles"} <= set(contract)


def test_a_backtest_is_a_parent_with_a_child_per_model(tmp_path: Path, trained_home: Home, tiny_cfg) -> None:
    """`fluxora backtest` logs the same shape: a parent named for it, a child per model."""
    from fluxora import steps

    result = steps.backtest(tiny_cfg, trained_home, output=tmp_path / "lb.json")
    client = registry.configure(trained_home)
    parent = client.get_run(result.run_id)
    board = json.loads((tmp_path / "lb.json").read_text())
    assert re.fullmatch(rf"backtest {len(board['models'])} models h\d+ \S+", parent.info.run_name)
    assert parent.data.tags[registry.KIND_TAG] == "backtest"
    assert parent.inputs.dataset_inputs[0].dataset.name == "load (validated)"
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{result.run_id}'")
    by_name = {c.info.run_name: c for c in children}
    assert set(by_name) == {e["model"] for e in board["models"]}
    assert all(by_name[e["model"]].data.metrics["mae"] == pytest.approx(e["overall"]["mae"]) for e in board["models"])
