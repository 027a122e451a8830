"""`fluxora deploy` against a real Prefect server: schedules, triggers, one training run at a time."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import compose
from fluxora.paths import Home

pytestmark = pytest.mark.integration


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Home]]:
    home = Home(tmp_path_factory.mktemp("deploy-home"))
    port = _port()
    env = os.environ | {
        "FLUXORA_HOME": str(home.root),
        "PREFECT_HOME": str(home.root / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",  # pick up queued runs quickly
    }
    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen(
        [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        text=True,
    )
    runner = None
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(healthy, 180, "the Prefect server")
        runner = subprocess.Popen(
            [sys.executable, "-m", "fluxora.cli", "deploy", *TINY_OVERRIDES],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_for(lambda: _deployment_count(env) == 4, 120, "four deployments")
        yield env, home
    finally:
        if runner is not None:
            _stop(runner)
        _stop(server)


def _deployment_count(env: dict[str, str]) -> int:
    try:  # a busy server may not answer within the timeout while the deployments register
        r = httpx.post(f"{env['PREFECT_API_URL']}/deployments/filter", json={}, timeout=5)
    except httpx.TransportError:
        return 0
    return len(r.json()) if r.status_code == 200 else 0


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fluxora.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_deployments_have_timezone_aware_schedules(deployed: tuple[dict[str, str], Home]) -> None:
    env, _ = deployed
    cfg = compose(TINY_OVERRIDES)
    r = httpx.post(f"{env['PREFECT_API_URL']}/deployments/filter", json={}, timeout=5)
    assert sorted(d["name"] for d in r.json()) == ["after-model-runs", "daily", "hourly", "hourly"]
    crons = {s["schedule"]["cron"] for d in r.json() for s in d["schedules"]}
    d = cfg.deploy
    assert crons == {d.ingest_cron, d.train_cron, d.monitor_cron, d.weather_cron}
    weather = next(x for x in r.json() if x["name"] == "after-model-runs")
    assert [s["schedule"]["cron"] for s in weather["schedules"]] == ["20 5,11,17,23 * * *"] == [d.weather_cron]
    assert {s["schedule"]["timezone"] for d in r.json() for s in d["schedules"]} == {cfg.deploy.timezone}
    train = next(d for d in r.json() if d["name"] == "daily")
    assert train["global_concurrency_limit"]["limit"] == 1
    assert train["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    assert all(d["global_concurrency_limit"] is None for d in r.json() if d["name"] != "daily")


def test_trigger_runs_flows_and_training_runs_one_at_a_time(deployed: tuple[dict[str, str], Home]) -> None:
    from fluxora import registry

    env, home = deployed
    ingest = _cli(env, "trigger", "ingest", "--wait")
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert "Completed" in ingest.stdout

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fluxora.cli", "trigger", "train", "--wait"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs

    r = httpx.post(
        f"{env['PREFECT_API_URL']}/flow_runs/filter",
        json={
            "flows": {"name": {"any_": ["fluxora-train"]}},
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
        },
        timeout=5,
    )
    runs = sorted(r.json(), key=lambda run: run["start_time"])
    assert len(runs) == 2
    assert runs[0]["end_time"] <= runs[1]["start_time"]  # the second waited for the first

    cfg = compose(TINY_OVERRIDES)
    client = registry.configure(home)
    versions = client.search_model_versions(f"name='{cfg.train.registered_model_name}'")
    assert len(versions) == 1  # same data and config: registration is idempotent


def test_trigger_weather_with_nothing_configured_succeeds(deployed: tuple[dict[str, str], Home]) -> None:
    """`fluxora trigger weather`: without a forecast source the run says so and completes."""
    env, home = deployed
    run = _cli(env, "trigger", "weather", "--wait")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("fluxora-weather/after-model-runs: flow run") and "Completed" in run.stdout
    found = httpx.post(
        f"{env['PREFECT_API_URL']}/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["fluxora-weather-forecasts"]}}},
        timeout=5,
    ).json()
    assert found and "no weather forecast source configured" in found[0]["data"]
    assert not home.weather_forecasts.exists()


def test_deployments_have_typed_parameters_descriptions_and_tags(deployed: tuple[dict[str, str], Home]) -> None:
    from fluxora.config import _group_options, conf_dir

    env, _ = deployed
    found = httpx.post(f"{env['PREFECT_API_URL']}/deployments/filter", json={}, timeout=5).json()
    by_tag = {next(t for t in d["tags"] if t != "fluxora"): d for d in found}
    assert set(by_tag) == {"ingest", "train", "monitor", "weather"} and all("fluxora" in d["tags"] for d in found)
    expected = {"ingest": ["data_path", "series", "overrides"], "train": ["model", "horizon", "overrides"]}
    for tag, names in (expected | {"monitor": ["overrides"], "weather": ["overrides"]}).items():
        d = by_tag[tag]
        props = d["parameter_openapi_schema"]["properties"]
        assert sorted(props, key=lambda n: props[n]["position"]) == names, tag
        assert all(p.get("description") for p in props.values()), tag  # from the flow's docstring
        assert len(d["description"]) > 80 and "overrides" in d["description"], tag
        assert d["parameters"] == {"overrides": TINY_OVERRIDES}  # what `fluxora deploy` was given
    train = by_tag["train"]["parameter_openapi_schema"]["properties"]
    assert train["model"]["anyOf"][0]["enum"] == sorted(_group_options(conf_dir(), "model"))
    steps, duration = train["horizon"]["anyOf"][0]["anyOf"]  # steps >= 1 or a duration (24h)
    assert steps | {"minimum": 1} == steps and re.match(duration["pattern"], "90min")
    assert by_tag["ingest"]["parameter_openapi_schema"]["properties"]["series"]["anyOf"][0]["type"] == "array"


def test_a_typed_parameter_reaches_the_run(deployed: tuple[dict[str, str], Home]) -> None:
    """`prefect deployment run -p model=ridge`, as a Prefect user starts one: the run trains ridge
    (its leaderboard artifact says so); a value outside the schema is refused before any run."""
    env, _ = deployed
    prefect = [str(Path(sys.executable).parent / "prefect"), "deployment", "run", "fluxora-train/daily"]
    bad = subprocess.run([*prefect, "-p", "model=xgbost"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "xgbost" in bad.stdout + bad.stderr
    ok = subprocess.run(
        [*prefect, "-p", "model=ridge", "--watch", "--watch-timeout", "500"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ok.returncode == 0 and "Completed" in ok.stdout, ok.stdout[-2000:] + ok.stderr[-2000:]

    match = re.search(r"UUID: ([0-9a-f-]{36})", ok.stdout)
    assert match, ok.stdout
    run = httpx.get(f"{env['PREFECT_API_URL']}/flow_runs/{match.group(1)}", timeout=5).json()
    assert run["parameters"]["model"] == "ridge" and run["state"]["type"] == "COMPLETED"
    artifacts = httpx.post(
        f"{env['PREFECT_API_URL']}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}, "key": {"any_": ["fluxora-leaderboard"]}}},
        timeout=5,
    ).json()
    models = {row["model"] for row in json.loads(artifacts[0]["data"])}
    assert {"ridge", "seasonal_naive_daily", "seasonal_naive_weekly"} <= models and "xgboost" not in models


def test_catch_up_runs_only_the_latest_missed_slot() -> None:
    from datetime import UTC, datetime, timedelta

    from flows.pipeline import stale_reason

    now = datetime(2026, 3, 29, 12, 5, tzinfo=UTC)
    slots = [now - timedelta(hours=h) for h in (3, 2, 1)]  # three hourly slots missed during downtime
    assert stale_reason(slots[0], slots[1:], now) is not None
    assert stale_reason(slots[1], [slots[0], slots[2]], now) is not None
    assert stale_reason(slots[2], slots[:2], now) is None  # the latest one does the work
    future = now + timedelta(hours=1)
    assert stale_reason(slots[2], [future], now) is None  # a slot not yet due does not count
    assert str(slots[2]) in (stale_reason(slots[0], slots[1:], now) or "")  # names the slot that supersedes it


def test_trigger_without_server_says_what_to_do(tmp_path: Path) -> None:
    env = os.environ | {"FLUXORA_HOME": str(tmp_path), "PREFECT_API_URL": f"http://127.0.0.1:{_port()}/api"}
    result = _cli(env, "trigger", "train")
    assert result.returncode == 1
    assert "make prefect-server" in result.stderr
