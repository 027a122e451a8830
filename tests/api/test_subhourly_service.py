"""A 30-minute series served at its own resolution: ingest, the gate (data.freq: auto), features,
training and the service, with points every 30 minutes and the resolution named."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from serving_support import key_headers, settings_for

from conftest import TINY_OVERRIDES
from fluxora import steps
from fluxora.api.app import create_app
from fluxora.config import compose
from fluxora.paths import Home
from fluxora.runtime import prepare


def test_a_30_minute_model_serves_30_minute_points(tmp_path) -> None:
    overrides = [
        *TINY_OVERRIDES,
        "data.days=24",
        "data.resolution=30min",
        "train.min_train_days=7",
        "backtest.windows=2",
        "model=ridge",
        "train.horizon=24h",
        "train.registered_model_name=half-hourly",
        "train.promotion_margin=-1",  # tiny data: promote whatever trains (accuracy is not the point)
    ]
    cfg = compose(overrides)
    home = prepare(Home(tmp_path / "home"), cfg)
    for step in (steps.ingest, steps.validate, steps.features, steps.train):
        step(cfg, home)
    app = create_app(settings_for(cfg, home))
    with TestClient(app) as client:
        client.headers.update(key_headers(app))
        current = client.get("/v1/models/current")
        assert current.status_code == 200, current.text
        contract = current.json()["contract"]
        assert contract["resolution"] == "30min" and contract["horizon"] == 48  # "24h" = 48 steps
        assert contract["history_hours"]["load_history"] == 168  # hours stay hours
        for horizon, count in (("24h", 48), (6, 6), ("90min", 3), (None, 48)):  # left out: a day ahead
            asked = {} if horizon is None else {"horizon": horizon}
            got = client.get("/v1/forecast", params={"series_id": "series_000", **asked})
            assert got.status_code == 200, got.text
            body = got.json()
            assert body["resolution"] == "30min" and body["horizon"] == count
            times = pd.to_datetime([p["timestamp"] for p in body["points"]], utc=True)
            origin = pd.Timestamp(body["origin"])
            assert len(times) == count and times[0] - origin == pd.Timedelta("30min")
            assert (np.diff(times.asi8) == pd.Timedelta("30min").value).all()
            assert np.isfinite([p["value"] for p in body["points"]]).all()
        for bad in ("45min", "25h", "soon"):  # not whole steps, beyond the model, not a horizon
            refused = client.get("/v1/forecast", params={"series_id": "series_000", "horizon": bad})
            assert refused.status_code == 422, (bad, refused.text)
        # POST /v1/predict: histories in steps (a week of load is 336 half-hours, a day 48)
        origin = body["origin"]
        features = {"load_history": [100.0] * 336, "temp_history": [10.0] * 48}
        instance = {"series_id": "series_000", "origin": origin, "features": features}
        posted = client.post("/v1/predict", json={"instances": [instance], "horizon": "24h"})
        assert posted.status_code == 200, posted.text
        assert len(posted.json()["forecasts"][0]["points"]) == 48
        batch = client.post("/v1/forecast", json={"series_ids": ["series_000"]})  # no horizon: a day
        assert batch.status_code == 200 and len(batch.json()["forecasts"][0]["points"]) == 48
        instance["features"] = {"load_history": [100.0] * 168, "temp_history": [10.0] * 48}  # hourly lengths
        short = client.post("/v1/predict", json={"instances": [instance], "horizon": 4})
        assert short.status_code == 422 and "needs 336 values" in short.text


def test_a_30_minute_issued_weather_model_serves_with_its_forecast_at_every_step(tmp_path) -> None:
    """Hourly weather vintages serve a 30-minute model: the served origin (the last half-hour)
    has its own forecast row, so no step falls back to persistence."""
    overrides = [
        *TINY_OVERRIDES,
        "data.days=24",
        "data.resolution=30min",
        "data.weather_forecast.provider=synthetic",
        "train.min_train_days=7",
        "backtest.windows=2",
        "model=ridge",
        "train.horizon=24h",
        "train.registered_model_name=half-hourly-issued",
        "train.promotion_margin=-1",
    ]
    cfg = compose(overrides)
    home = prepare(Home(tmp_path / "home"), cfg)
    for step in (steps.ingest, steps.validate, steps.features, steps.train):
        step(cfg, home)
    app = create_app(settings_for(cfg, home))
    with TestClient(app) as client:
        client.headers.update(key_headers(app))
        contract = client.get("/v1/models/current").json()["contract"]
        assert contract["resolution"] == "30min" and contract["weather"] == "issued"
        got = client.get("/v1/forecast", params={"series_id": "series_000", "horizon": "24h"})
        assert got.status_code == 200, got.text
        body = got.json()
        assert pd.Timestamp(body["origin"]).minute == 30  # off the hour
        assert body["weather_issued_at"] is not None and body["weather_fallback_steps"] == []
        assert len(body["points"]) == 48
