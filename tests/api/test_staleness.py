"""Stale features are seen: the real service over a trained home whose data end in 2024.

The expected ages come from the offline store (what materialization loaded), not from the service.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_support import key_headers, settings_for

from fluxora.api.app import create_app
from fluxora.config import FluxoraConfig
from fluxora.features import store as fs
from fluxora.features.names import EVENT_TIMESTAMP, LOAD_HISTORY, TEMP_HISTORY
from fluxora.paths import Home

SERIES = "series_000"
DAY = 86_400.0
NEVER = 1e12  # seconds: a limit no test state reaches (~31,700 years)


@contextmanager
def _service(cfg: FluxoraConfig, home: Home, **limits: float) -> Iterator[TestClient]:
    app = create_app(settings_for(cfg, home, **limits))
    with TestClient(app) as c:
        c.headers.update(key_headers(app))
        yield c


@pytest.fixture(scope="module")
def ages(trained_home: Home) -> dict[str, float]:
    """Series -> age in seconds of its latest offline state, now."""
    latest = fs.offline_latest(trained_home)
    now = pd.Timestamp.now(tz="UTC")
    return {
        str(s): (now - pd.Timestamp(t).tz_convert("UTC")).total_seconds()
        for s, t in zip(latest["series_id"], latest[EVENT_TIMESTAMP], strict=True)
    }


def _metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert m, f"{name}{labels} not in /metrics"
    return float(m.group(1))


def test_old_features_are_flagged_everywhere(
    tiny_cfg: FluxoraConfig, trained_home: Home, ages: dict[str, float]
) -> None:
    oldest = max(ages.values())
    assert min(ages.values()) > 2 * DAY, "the test data are historical"
    with _service(tiny_cfg, trained_home, max_feature_age_s=DAY) as c:
        # Readiness knows every series' age from start-up, before any forecast was asked for.
        ready = c.get("/health/ready")
        assert ready.status_code == 200, ready.text  # still in rotation: it answers
        body = ready.json()
        assert body["status"] == "degraded"
        assert f"{len(ages)} of {len(ages)} series older than serve.max_feature_age_s (86400 s)" in body["detail"]
        reported = re.search(r"oldest ([0-9.]+) days", body["detail"])
        assert reported and abs(float(reported.group(1)) - oldest / DAY) <= 0.1

        metrics = c.get("/metrics").text
        assert _metric(metrics, "fluxora_stale_series") == len(ages)
        assert abs(_metric(metrics, "fluxora_feature_age_max_seconds") - oldest) < 600

        one = c.get("/v1/forecast", params={"series_id": SERIES, "horizon": 3})
        assert one.status_code == 200, one.text
        assert one.json()["stale"] is True
        many = c.post("/v1/forecast", json={"series_ids": sorted(ages), "horizon": 3})
        assert many.status_code == 200, many.text
        assert [f["stale"] for f in many.json()["forecasts"]] == [True] * len(ages)
        predicted = c.post("/v1/predict", json=_predict_body(c, SERIES))
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["forecasts"][0]["stale"] is False  # the caller's own features: no age

        metrics = c.get("/metrics").text
        assert _metric(metrics, "fluxora_stale_forecasts_total", '{endpoint="get_forecast"}') == 1
        assert _metric(metrics, "fluxora_stale_forecasts_total", '{endpoint="post_forecast"}') == len(ages)


def test_fresh_enough_features_are_not_stale(tiny_cfg: FluxoraConfig, trained_home: Home) -> None:
    with _service(tiny_cfg, trained_home, max_feature_age_s=NEVER) as c:
        ready = c.get("/health/ready").json()
        assert ready["status"] == "ready" and ready["detail"] is None
        r = c.get("/v1/forecast", params={"series_id": SERIES, "horizon": 3})
        assert r.status_code == 200 and r.json()["stale"] is False
        metrics = c.get("/metrics").text
        assert _metric(metrics, "fluxora_stale_series") == 0
        assert "fluxora_stale_forecasts_total{" not in metrics  # no stale forecast was served


def test_beyond_the_hard_limit_the_series_is_refused(
    tiny_cfg: FluxoraConfig, trained_home: Home, ages: dict[str, float]
) -> None:
    with _service(tiny_cfg, trained_home, max_feature_age_s=DAY, max_feature_age_hard_s=2 * DAY) as c:
        r = c.get("/v1/forecast", params={"series_id": SERIES, "horizon": 3})
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"]
        detail = r.json()["detail"]
        assert detail.startswith(f"features of series '{SERIES}' are ")
        assert "beyond serve.max_feature_age_hard_s (172800 s)" in detail
        batch = c.post("/v1/forecast", json={"series_ids": sorted(ages), "horizon": 3})
        assert batch.status_code == 503 and f"and {len(ages) - 1} more" in batch.json()["detail"]
        # Caller-supplied features have no age: /v1/predict still answers.
        assert c.post("/v1/predict", json=_predict_body(c, SERIES)).status_code == 200
        assert "beyond 172800 s (serve.max_feature_age_hard_s) forecasts are refused" in c.get("/health/ready").text
        assert _metric(c.get("/metrics").text, "fluxora_stale_refused_total") == 2
    # Off (the default, 0): the same old series is served, flagged.
    with _service(tiny_cfg, trained_home, max_feature_age_s=DAY, max_feature_age_hard_s=0.0) as c:
        r = c.get("/v1/forecast", params={"series_id": SERIES, "horizon": 3})
        assert r.status_code == 200 and r.json()["stale"] is True


def _predict_body(c: TestClient, series: str) -> dict[str, Any]:
    """A /v1/predict body from the contract the service reports, with plausible flat histories."""
    hours = c.get("/v1/models/current").json()["contract"]["history_hours"]
    features = {LOAD_HISTORY: [100.0] * hours[LOAD_HISTORY], TEMP_HISTORY: [10.0] * hours[TEMP_HISTORY]}
    return {"instances": [{"series_id": series, "origin": "2024-02-14T23:00:00Z", "features": features}], "horizon": 2}
