"""`fluxora run data.resolution=30min` end to end (a real Prefect flow run), then the service
on its champion: the forecast comes at 30 minutes and names its resolution."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_support import key_headers, settings_for

from conftest import TINY_OVERRIDES
from fluxora.config import compose
from fluxora.paths import Home

pytestmark = pytest.mark.integration

OVERRIDES = [
    *TINY_OVERRIDES,
    "data.days=24",
    "data.resolution=30min",
    "train.min_train_days=7",
    "backtest.windows=2",
    "model=ridge",
    "train.horizon=24h",
    "train.promotion_margin=-1",  # tiny data: promote whatever trains
]


def test_fluxora_run_at_30_minutes_serves_30_minute_points(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from fluxora import registry
    from fluxora.api.app import create_app
    from fluxora.cli import main

    home = Home(tmp_path / "home")
    monkeypatch.setenv("FLUXORA_HOME", str(home.root))
    with prefect_test_harness(server_startup_timeout=180):
        assert main(["run", *OVERRIDES]) == 0
    cfg = compose(OVERRIDES)
    champion = registry.champion(home, cfg.train.registered_model_name)
    assert champion is not None
    assert json.loads(champion["tags"][registry.CONTRACT_TAG])["resolution"] == "30min"
    report = json.loads((home.reports / "validation.json").read_text())
    assert report["model_resolution"] == "30min"  # not averaged to hourly
    app = create_app(settings_for(cfg, home))
    with TestClient(app) as client:
        client.headers.update(key_headers(app))
        assert client.get("/v1/models/current").json()["contract"]["resolution"] == "30min"
        got = client.get("/v1/forecast", params={"series_id": "series_000", "horizon": "24h"})
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["resolution"] == "30min" and len(body["points"]) == 48
        times = pd.to_datetime([p["timestamp"] for p in body["points"]], utc=True)
        assert (times[1:] - times[:-1] == pd.Timedelta("30min")).all()
        assert times[0] - pd.Timestamp(body["origin"]) == pd.Timedelta("30min")
