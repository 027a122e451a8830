"""A load-only CSV file (no temperature column) end to end: ingest, the gate, features, training
(ridge and xgboost, each registered under its own name) and forecasts from the service."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_support import key_headers, settings_for

from conftest import TINY_OVERRIDES
from fluxora import steps
from fluxora.api.app import create_app
from fluxora.config import DataConfig, compose
from fluxora.data.schema import LOAD, SERIES_ID, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.paths import Home
from fluxora.runtime import prepare


@pytest.fixture(scope="module")
def load_only_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Home, list[str]]]:
    """A home where a load-only file was ingested and featurized; yields it and the overrides."""
    folder = tmp_path_factory.mktemp("load-only-data")
    data = generate(DataConfig(n_series=2, days=45))
    text = data.assign(**{TIMESTAMP: data[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ")})
    text[[SERIES_ID, TIMESTAMP, LOAD]].to_csv(folder / "load.csv", index=False)
    overrides = [
        *TINY_OVERRIDES,
        "data=csv",
        f"data.path={folder / 'load.csv'}",
        f"data.roots=[{folder}]",
        "data.timezone=Europe/Berlin",
    ]
    cfg = compose(overrides)
    home = prepare(Home(tmp_path_factory.mktemp("load-only-home")), cfg)
    for step in (steps.ingest, steps.validate, steps.features):
        step(cfg, home)
    yield home, overrides


@pytest.mark.parametrize("model", ["ridge", "xgboost"])
def test_a_load_only_file_trains_and_serves(load_only_home: tuple[Home, list[str]], model: str) -> None:
    home, overrides = load_only_home
    # 45 tiny days: promote whatever trains (accuracy is not what this test is about)
    name = [f"model={model}", f"train.registered_model_name=load-only-{model}", "train.promotion_margin=-1"]
    cfg = compose([*overrides, *name])
    assert cfg.features.timezone == "Europe/Berlin"  # the calendar follows data.timezone
    steps.train(cfg, home)
    app = create_app(settings_for(cfg, home))
    with TestClient(app) as client:
        client.headers.update(key_headers(app))
        current = client.get("/v1/models/current")
        assert current.status_code == 200, current.text
        contract = current.json()["contract"]
        assert contract["temperature"] == "none" and contract["state_features"] == ["load_history"]
        got = client.get("/v1/forecast", params={"series_id": "series_000", "horizon": 24})
        assert got.status_code == 200, got.text
        values = np.array([p["value"] for p in got.json()["points"]])
        assert values.shape == (24,) and np.isfinite(values).all() and (values > 0).all()
        load = {"load_history": [100.0] * 168}
        instance = {"series_id": "series_000", "origin": got.json()["origin"], "features": load}
        posted = client.post("/v1/predict", json={"instances": [instance], "horizon": 24})
        assert posted.status_code == 200, posted.text
        instance["features"]["temp_history"] = [10.0] * 24  # a load-only model reads no temperature
        refused = client.post("/v1/predict", json={"instances": [instance], "horizon": 24})
        assert refused.status_code == 422 and "unknown features ['temp_history']" in refused.text
