"""A picture of a forecast: GET /v1/forecast/plot and `fluxora plot`, on a really trained home
(real registry, real Feast online store)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from serving_support import key_headers, services, settings_for

from conftest import TINY_OVERRIDES
from fluxora import cli
from fluxora.api.app import create_app
from fluxora.config import FluxoraConfig
from fluxora.paths import Home

SERIES = "series_000"


@pytest.fixture(scope="module")
def app(tiny_cfg: FluxoraConfig, trained_home: Home) -> FastAPI:
    return create_app(settings_for(tiny_cfg, trained_home))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def _polyline_points(page: str) -> list[int]:
    return [len(m.split()) for m in re.findall(r'<polyline points="([^"]*)"', page)]


def test_plot_is_an_html_page_with_the_forecast_drawn(client: TestClient, app: FastAPI) -> None:
    headers = key_headers(app)
    r = client.get("/v1/forecast/plot", params={"series_id": SERIES, "horizon": 12}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    model = services(app).store.current
    assert model is not None
    assert SERIES in page and f"model version {model.version}" in page
    assert "<svg" in page and "<script" not in page and "style=" not in page  # renders under the strict CSP
    assert "default-src 'none'" in r.headers["content-security-policy"]
    contract = model.forecaster.contract
    actual, forecast = _polyline_points(page)
    assert actual == contract.load_history_hours and forecast == 12
    if {0.1, 0.9} <= set(contract.quantiles):
        assert "<polygon" in page and "80 % interval" in page
    # The model GET /v1/forecast serves is the one named on the page.
    served = client.get("/v1/forecast", params={"series_id": SERIES, "horizon": 12}, headers=headers).json()
    assert served["model_version"] == model.version


def test_plot_errors_are_4xx(client: TestClient, app: FastAPI) -> None:
    headers = key_headers(app)
    assert client.get("/v1/forecast/plot", params={"series_id": SERIES}).status_code == 401
    assert client.get("/v1/forecast/plot", params={"series_id": "nope"}, headers=headers).status_code == 404
    for horizon in ("0", "999", "abc"):
        r = client.get("/v1/forecast/plot", params={"series_id": SERIES, "horizon": horizon}, headers=headers)
        assert r.status_code == 422, (horizon, r.text)
    assert client.get("/v1/forecast/plot", headers=headers).status_code == 422
    scoped = key_headers(app, series=["series_001"])
    assert client.get("/v1/forecast/plot", params={"series_id": "series_001"}, headers=scoped).status_code == 200
    for sid in (SERIES, "nope"):  # as GET /v1/forecast: 403 for any series outside the key's scope
        assert client.get("/v1/forecast/plot", params={"series_id": sid}, headers=scoped).status_code == 403


def test_cli_plot_writes_a_self_contained_page(
    trained_home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLUXORA_HOME", str(trained_home.root))
    out = tmp_path / "p.html"
    assert cli.main(["plot", SERIES, "--horizon", "6", "--output", str(out), *TINY_OVERRIDES]) == 0
    page = out.read_text()
    version = re.search(r"model version (\S+),", capsys.readouterr().out)
    assert version is not None and f"model version {version.group(1)}" in page
    assert SERIES in page and "<svg" in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    actual, forecast = _polyline_points(page)
    assert forecast == 6 and actual >= 24 * 7  # a week of validated actuals before the origin, and any after
    assert cli.main(["plot", SERIES, "--from", "2024-01-01T00:00Z", "--output", str(out), *TINY_OVERRIDES]) == 0
    assert _polyline_points(out.read_text())[0] > actual
    assert cli.main(["plot", "nope", "--output", str(out), *TINY_OVERRIDES]) == 1
    assert cli.main(["plot", SERIES, "--horizon", "0", "--output", str(out), *TINY_OVERRIDES]) == 1
    assert cli.main(["plot", SERIES, "--horizon", "6h", "--output", str(out), *TINY_OVERRIDES]) == 0
    assert _polyline_points(out.read_text())[1] == 6  # a duration, at this hourly model 6 steps
    assert cli.main(["plot", SERIES, "--horizon", "90min", "--output", str(out), *TINY_OVERRIDES]) == 1
    assert "--horizon: invalid horizon '90min': not a whole number of h steps" in capsys.readouterr().err
    assert cli.main(["plot", SERIES, "--from", "yesterday-ish", "--output", str(out), *TINY_OVERRIDES]) == 1
    assert "--from 'yesterday-ish' is not an ISO" in capsys.readouterr().err
