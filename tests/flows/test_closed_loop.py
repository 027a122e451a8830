"""The closed loop, end to end: drifted data in, a new champion served out, nobody touching it.

Real processes on a real Prefect server: `fluxora deploy` serves the deployments on a CSV
source, `fluxora serve` serves forecasts. The test only does what the clock and the outside
world would do: it writes new data to the source file and starts the ingest and monitoring
deployments (their hourly schedules would). Monitoring sees drift and triggers the training
deployment by itself; the gate promotes the retrained model; the service swaps to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from process_support import free_port, start_prefect_server, stop, wait_healthy

from conftest import TINY_OVERRIDES
from flows.deployments import DEPLOYMENTS
from fluxora import registry
from fluxora.config import compose
from fluxora.data.synthetic import generate
from fluxora.paths import Home

pytestmark = pytest.mark.integration

DAYS, NEW_DAYS = 45, 52


def _write_source(path: Path, days: int, drift_days: int = 0) -> None:
    """Tiny synthetic load as a CSV source; the last `drift_days` are a heat wave: load x1.5, +10 °C."""
    data = generate(compose([*TINY_OVERRIDES, f"data.days={days}"]).data)
    if drift_days:
        late = data["timestamp"] > data["timestamp"].max() - pd.Timedelta(days=drift_days)
        data.loc[late, "load"] *= 1.5
        data.loc[late, "temperature"] += 10.0
    tmp = path.with_suffix(".tmp")
    data.to_csv(tmp, index=False)
    tmp.replace(path)  # the source changes at once, as a data drop would


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fluxora.cli", *args], env=env, capture_output=True, text=True, timeout=900, check=False
    )


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("closed-loop")
    source = root / "load.csv"
    _write_source(source, DAYS)
    port = free_port()
    env = os.environ | {
        "FLUXORA_HOME": str(root / "home"),
        "PREFECT_HOME": str(root / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    # The test starts every run itself (as the clock would); the real schedules must not fire
    # inside it, or a monitoring run at :20 past retrains first and the loop is in cooldown.
    never = "0 0 1 1 *"
    overrides = [
        *TINY_OVERRIDES,
        "data=csv",
        f"data.path={source}",
        f"data.roots=[{root}]",
        *(f"deploy.{job}_cron='{never}'" for job in DEPLOYMENTS),
    ]
    server = start_prefect_server(env, port)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        wait_healthy(f"{env['PREFECT_API_URL']}/health", server, 240, "the Prefect server")
        runner = subprocess.Popen(
            [sys.executable, "-m", "fluxora.cli", "deploy", *overrides],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(runner)

        def deployed() -> bool:
            r = httpx.post(f"{env['PREFECT_API_URL']}/deployments/filter", json={}, timeout=5)
            return r.status_code == 200 and len(r.json()) == len(DEPLOYMENTS)

        _wait(deployed, 180, f"{len(DEPLOYMENTS)} deployments")
        yield {"env": env, "source": source, "home": Home(root / "home"), "procs": procs}
    finally:
        for proc in procs:
            stop(proc)
        stop(server)


def test_drifted_data_leads_to_retrain_promotion_and_the_new_version_served(loop: dict[str, Any]) -> None:
    env, home, source = loop["env"], loop["home"], loop["source"]
    name = compose(TINY_OVERRIDES).train.registered_model_name

    # Day one: data, a first model (a weak one, made champion by hand), the service on it.
    assert _cli(env, "trigger", "ingest", "--wait").returncode == 0
    first = _cli(  # a weak XGBoost (3 trees): the default model=auto would make a good ridge champion
        env, "trigger", "train", "--wait", "model=xgboost", "model.n_estimators=3", "model.quantile_estimators=3"
    )
    assert first.returncode == 0, first.stdout + first.stderr
    if (registry.champion(home, name) or {}).get("version") != "1":
        assert _cli(env, "promote", "1", "--reason", "test set-up").returncode == 0
    key = _cli(env, "keys", "create", "--name", "loop").stdout.strip().splitlines()[-1]
    port = free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "fluxora.cli", "serve", "--port", str(port), "serve.poll_interval_s=1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    loop["procs"].append(service)
    wait_healthy(f"http://127.0.0.1:{port}/health/ready", service, 180, "the forecast API")

    def served_version() -> str:
        r = httpx.get(
            f"http://127.0.0.1:{port}/v1/forecast",
            params={"series_id": "series_000", "horizon": 24},
            headers={"X-API-Key": key},
            timeout=30,
        )
        assert r.status_code == 200, r.text  # every request succeeds, before, during and after the swap
        return str(r.json()["model_version"])

    assert served_version() == "1"

    # A week of heat wave arrives; the schedules run ingest and monitoring. Nobody else acts.
    _write_source(source, NEW_DAYS, drift_days=7)
    assert _cli(env, "trigger", "ingest", "--wait").returncode == 0
    monitored = _cli(env, "trigger", "monitor", "--wait")
    assert monitored.returncode == 0, monitored.stdout + monitored.stderr

    decisions = [json.loads(line) for line in (home.reports / "decisions.jsonl").read_text().splitlines()]
    assert decisions[-1]["retrain"] is True, decisions[-1]
    assert "drift" in decisions[-1]["reason"]

    def promoted() -> dict[str, Any] | None:
        champion = registry.champion(home, name)
        return champion if champion and champion["version"] != "1" else None

    champion = _wait(promoted, 600, "the retrained model to become champion")
    assert champion["version"] == "2"
    last_move = registry.history(home, name)[-1]
    assert (last_move["from"], last_move["to"]) == ("1", "2") and last_move["why"].startswith("gate:")

    _wait(lambda: served_version() == "2", 120, "the service to serve version 2")
