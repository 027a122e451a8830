"""End to end: the whole flow as a real Prefect flow run, then the CLI on its results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import FluxoraConfig
from fluxora.paths import Home

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def flow_home(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[tuple[Home, dict]]:
    from flows.pipeline import pipeline_flow
    from fluxora.runtime import prepare

    mp = pytest.MonkeyPatch()
    home = prepare(Home(tmp_path_factory.mktemp("flow-home")))
    mp.setenv("FLUXORA_HOME", str(home.root))
    state = pipeline_flow(overrides=TINY_OVERRIDES, return_state=True)
    assert state.is_completed(), state
    yield home, state.result().outputs()
    mp.undo()


def test_flow_registers_a_champion(flow_home: tuple[Home, dict], tiny_cfg: FluxoraConfig) -> None:
    from fluxora import registry

    home, results = flow_home
    assert set(results) == {"ingest", "validate", "features", "train", "monitor"}
    champion = registry.champion(home, tiny_cfg.train.registered_model_name)
    assert champion is not None
    assert champion["version"] == results["train"]["model"]["version"]
    m = champion["metrics"]
    assert m["mae"] < min(m["naive_daily_mae"], m["naive_weekly_mae"])
    assert champion["tags"]["fluxora.config_hash"] == tiny_cfg.fingerprint()
    assert len(champion["tags"]["fluxora.data_version"]) == 32


def test_flow_materialized_online_features(flow_home: tuple[Home, dict], tiny_cfg: FluxoraConfig) -> None:
    from fluxora.features.store import offline_latest
    from fluxora.status import collect

    home, _ = flow_home
    online = collect(tiny_cfg, home)["online_store"]
    expected = offline_latest(home)
    assert set(online) == set(expected["series_id"])
    for sid, ts in zip(expected["series_id"], expected["event_timestamp"], strict=True):
        assert online[sid] == ts.isoformat()


def test_flow_wrote_and_logged_drift_report(flow_home: tuple[Home, dict]) -> None:
    from fluxora import registry

    home, results = flow_home
    drift = results["monitor"]
    html, summary = Path(drift["html"]), Path(drift["json"])
    assert html.is_file() and html.stat().st_size > 1000
    assert home.reports in html.parents
    assert json.loads(summary.read_text())["n_series"] >= 1  # seen; judged only with enough history
    client = registry.configure(home)
    logged = {Path(a.path).name for a in client.list_artifacts(results["train"]["model"]["run_id"], "reports")}
    assert {"drift.html", "drift.json"} <= logged


def test_cli_status_json(
    flow_home: tuple[Home, dict], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluxora.cli import main

    home, results = flow_home
    monkeypatch.setenv("FLUXORA_HOME", str(home.root))
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["champion"]["version"] == results["train"]["model"]["version"]
    assert report["drift"]["drifted"] == results["monitor"]["drifted"]
    assert all(report["online_store"].values())


def test_cli_run_reports_a_failed_step_in_one_line(
    prefect_harness: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluxora.cli import main

    monkeypatch.setenv("FLUXORA_HOME", str(tmp_path / "home"))
    assert main(["run", "data.days=3"]) == 1  # three days cannot fill a week of history
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "history" in err[-1]
    assert not (tmp_path / "home" / "features" / "origin_state.parquet").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fluxora_serve_answers_forecasts(flow_home: tuple[Home, dict]) -> None:
    """`fluxora serve` in its own process (no state shared with the pipeline) serves the champion."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    home, results = flow_home
    port = _free_port()
    env = os.environ | {"FLUXORA_HOME": str(home.root)}
    # Bootstrap as a user would: a key from `fluxora keys create`, alone on its last output line.
    made = subprocess.run(
        [sys.executable, "-m", "fluxora.cli", "keys", "create", "--name", "e2e"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    cmd = [sys.executable, "-m", "fluxora.cli", "serve", "--port", str(port), *TINY_OVERRIDES]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"{base}/health/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert ready is not None and ready.status_code == 200, ready and ready.text
        assert ready.json()["model_version"] == results["train"]["model"]["version"]
        params = {"series_id": "series_000", "horizon": 6}
        assert httpx.get(f"{base}/v1/forecast", params=params, timeout=60).status_code == 401
        response = httpx.get(f"{base}/v1/forecast", params=params, headers={"X-API-Key": key}, timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["points"]) == 6 and body["model_version"] == results["train"]["model"]["version"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _artifacts_of_the_pipeline_run() -> dict[str, Any]:
    """The artifacts of the one completed `fluxora-pipeline` run, by key, read through Prefect's client."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["fluxora-pipeline"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
        )
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    return {a.key: a for a in found if a.key}


def test_flow_run_has_artifacts_for_each_step(flow_home: tuple[Home, dict]) -> None:
    _, results = flow_home
    found = _artifacts_of_the_pipeline_run()
    assert set(found) == {"fluxora-data", "fluxora-leaderboard", "fluxora-promotion-gate", "fluxora-monitoring"}

    board = found["fluxora-leaderboard"]
    assert board.type == "table"
    rows = json.loads(board.data) if isinstance(board.data, str) else board.data
    trained = results["train"]
    assert [r["model"] for r in rows] == [name for name, _ in trained["leaderboard"]]
    assert rows[0]["rank"] == 1 and rows[0]["mae"] == round(trained["leaderboard"][0][1]["mae"], 3)

    gate = found["fluxora-promotion-gate"]
    model = trained["model"]
    assert gate.type == "markdown"
    assert f"version {model['version']} is **champion**" in gate.data and model["reason"] in gate.data
    assert f"models:/{model['name']}/{model['version']}" in gate.data and model["run_id"] in gate.data

    monitoring = found["fluxora-monitoring"].data
    accuracy = results["monitor"]["accuracy"]
    assert results["monitor"]["decision"]["reason"] in monitoring
    assert f"realized accuracy {accuracy['status']}" in monitoring
    for report in (results["monitor"]["html"], accuracy["html_path"]):  # links to files that exist
        assert Path(report).is_file() and f"({Path(report).resolve().as_uri()})" in monitoring

    data = found["fluxora-data"].data
    assert f"{results['validate']['series']} series, {results['validate']['rows']} rows" in data
    assert results["features"]["materialized_until"] in data
