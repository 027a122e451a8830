"""`fluxora monitor ui`: Evidently's own UI on a workspace of real monitoring runs, checked over
its API and in headless Chromium (skipped without it; `make browser` installs Debian's package)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from history_support import SERIES, monitored_home
from process_support import CHROMIUM, NO_CHROMIUM, free_port, rendered_dom, stop, wait_healthy

from fluxora.monitoring import history

pytestmark = pytest.mark.integration  # three monitoring runs and a UI server: ~1.5 min

RUNS = 3


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """Three monitoring runs on a home with served forecasts, then `fluxora monitor ui` on it."""
    from fluxora import steps

    home, cfg = monitored_home(tmp_path_factory.mktemp("ui") / "home", worse_series="series_002")
    for _ in range(RUNS):
        steps.monitor(cfg, home)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fluxora.cli", "monitor", "ui", "--port", str(port)],
        env=os.environ | {"FLUXORA_HOME": str(home.root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/api/version", proc, timeout=180, what="fluxora monitor ui")  # type: ignore[arg-type]
        (project,) = [p for p in httpx.get(f"{url}/api/projects/").json() if p["name"] == history.PROJECT]
        yield url, project["id"], proc
    finally:
        stop(proc)  # type: ignore[arg-type]


def test_the_ui_serves_every_run_over_time(ui: tuple[str, str, subprocess.Popen[str]]) -> None:
    url, project, _ = ui
    dashboard = httpx.get(f"{url}/api/v2/dashboards/{project}").json()
    (panel,) = [p for p in dashboard["panels"] if p["title"] == "MAE"]
    series_filter = [
        {"metric": v["metric"], "metric_labels": v["metric_labels"], "tags": [], "metadata": {}}
        for v in panel["values"]
    ]
    points = httpx.post(
        f"{url}/api/v2/snapshots/{project}/data_series_batch", json={"series_filter": series_filter}
    ).json()
    assert len(points["sources"]) == RUNS  # one point per monitoring run, by its timestamp
    stamps = [s["timestamp"] for s in points["sources"]]
    assert stamps == sorted(stamps) and len(set(stamps)) == RUNS
    assert {s["params"]["column"] for s in points["series"]} == {f"{sid} · MAE" for sid in SERIES}
    assert all(len(s["values"]) == RUNS and all(v > 0 for v in s["values"]) for s in points["series"])


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_dashboard_renders_in_a_browser(ui: tuple[str, str, subprocess.Popen[str]], tmp_path: Path) -> None:
    url, project, _ = ui
    assert CHROMIUM
    home_page = _dom(f"{url}/", tmp_path / "p1")
    assert history.PROJECT in home_page  # the project list
    dom = _dom(f"{url}/projects/{project}", tmp_path / "p2")
    dashboard = httpx.get(f"{url}/api/v2/dashboards/{project}").json()
    titles = [p["title"] for p in dashboard["panels"]]
    assert {"Drift shares", "Realized accuracy", "MAE per horizon step", "level score", "residual_ratio"} <= set(titles)
    for title in titles:
        assert f">{title}<" in dom, title
    # Every panel drew its plot: an axis of run timestamps, and a line per series.
    assert dom.count(">Timestamps<") == len(titles)
    assert all(f">{sid}<" in dom for sid in SERIES)


def _dom(url: str, profile: Path) -> str:
    return re.sub(r"\s+", " ", rendered_dom(url, profile, window_size="1400,2400"))


def test_the_ui_says_where_it_is_and_refuses_an_empty_workspace(
    ui: tuple[str, str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, _, proc = ui
    stop(proc)  # type: ignore[arg-type]
    assert proc.stdout is not None
    out = proc.stdout.read()
    assert f"{RUNS} monitoring runs" in out and f"open {url}" in out
    empty = subprocess.run(
        [sys.executable, "-m", "fluxora.cli", "monitor", "ui"],
        env=os.environ | {"FLUXORA_HOME": str(tmp_path / "empty")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert empty.returncode == 1
    assert "no monitoring runs" in empty.stderr and "fluxora run" in empty.stderr
    assert "Traceback" not in empty.stderr
