"""/docs and /redoc work offline: their assets come from the service itself (fastapi-offline), the
CSP allows nothing else, and a real headless Chromium renders the operations from them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from process_support import CHROMIUM, NO_CHROMIUM, free_port, rendered_dom, stop, wait_healthy

OPERATIONS = ("/v1/forecast", "/health/live")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`fluxora serve` on an empty home (no model: the docs are served all the same); its stdout
    is a pipe, so it logs in its default format off a terminal (JSON)."""
    home = tmp_path_factory.mktemp("docs-home")
    port = free_port()
    env = os.environ | {"FLUXORA_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fluxora.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/health/live", proc, timeout=120, what="fluxora serve")  # type: ignore[arg-type]
        yield url, proc
    finally:
        stop(proc)  # type: ignore[arg-type]


@pytest.fixture
def service(server: tuple[str, subprocess.Popen[str]]) -> str:
    return server[0]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_their_own_assets(service: str, page: str) -> None:
    response = httpx.get(service + page)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "http" not in csp and "default-src 'self'" in csp
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert httpx.get(service + asset).status_code == 200, asset


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_swagger_ui_renders_the_operations_in_a_browser(service: str, tmp_path: Path) -> None:
    dom = rendered_dom(f"{service}/docs", tmp_path / "profile")
    assert 'class="swagger-ui' in dom
    blocks = re.findall(r'data-path="([^"]+)"', dom)  # one per rendered operation
    for path in OPERATIONS:
        assert path in blocks, (path, blocks)


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_redoc_renders_the_operations_in_a_browser(service: str, tmp_path: Path) -> None:
    dom = rendered_dom(f"{service}/redoc", tmp_path / "profile")
    assert "Fluxora forecast API" in dom
    for path in OPERATIONS:
        assert path in dom, path


def test_service_log_is_one_json_object_per_line(server: tuple[str, subprocess.Popen[str]]) -> None:
    url, proc = server
    httpx.get(f"{url}/health/live")
    stop(proc)  # type: ignore[arg-type]
    assert proc.stdout is not None
    lines = proc.stdout.read().splitlines()
    records = [json.loads(line) for line in lines]  # uvicorn's lines, the banner and the access log alike
    assert all({"time", "level", "logger"} <= set(r) for r in records)
    assert any(r["logger"].startswith("uvicorn") for r in records)
    assert any(r.get("event") == "request" and r.get("path") == "/health/live" for r in records)
