"""POST /v1/forecast for many series: one online read and one model call for all of them, every
series answered in request order, and a clear 422 above `serve.max_series_per_request`."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_support import key_headers, services, settings_for

from conftest import TINY_OVERRIDES
from fluxora import steps
from fluxora.api.app import create_app
from fluxora.config import compose
from fluxora.paths import Home
from fluxora.runtime import prepare

N_SERIES = 300
FORECAST = "/v1/forecast"


@pytest.fixture(scope="module")
def many_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A ridge champion trained on the tiny sample, then 300 series' latest states materialized
    (the model is global across series, so a sample trains it)."""
    home = prepare(Home(tmp_path_factory.mktemp("many-home")))
    cfg = compose([*TINY_OVERRIDES, "model=ridge", "train.promotion_margin=-1"])
    for step in (steps.ingest, steps.validate, steps.features, steps.train):
        step(cfg, home)
    many = compose([*TINY_OVERRIDES, "model=ridge", f"data.n_series={N_SERIES}", "data.days=15"])
    for step in (steps.ingest, steps.validate, steps.features):
        step(many, home)
    yield home


@pytest.fixture(scope="module")
def client(many_home: Home) -> Iterator[TestClient]:
    cfg = compose(TINY_OVERRIDES)
    app = create_app(settings_for(cfg, many_home, forecast_cache_entries=0, max_series_per_request=N_SERIES))
    with TestClient(app) as c:
        c.headers.update(key_headers(app))
        yield c


def _ids(n: int) -> list[str]:
    return [f"series_{i:03d}" for i in range(n)]


def test_many_series_in_one_online_read_and_one_model_call(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = services(client.app)  # type: ignore[arg-type]
    forecaster = svc.store.current.forecaster
    calls: list[int] = []
    real = forecaster.forecast

    def counted(state: dict[str, np.ndarray], *args: Any, **kwargs: Any) -> Any:
        calls.append(len(next(iter(state.values()))))
        return real(state, *args, **kwargs)

    monkeypatch.setattr(forecaster, "forecast", counted)
    asked = _ids(N_SERIES)
    random.Random(7).shuffle(asked)  # not the store's order
    reads = svc.online.reads
    r = client.post(FORECAST, json={"series_ids": asked, "horizon": 24})
    assert r.status_code == 200, r.text[:300]
    assert svc.online.reads - reads <= 1  # one read (none when every state was still kept)
    assert calls == [N_SERIES]  # one model call for every series (the forecast cache is off here)
    forecasts = r.json()["forecasts"]
    assert [f["series_id"] for f in forecasts] == asked
    assert all(len(f["points"]) == 24 for f in forecasts)
    values = np.array([[p["value"] for p in f["points"]] for f in forecasts])
    assert np.isfinite(values).all() and (values > 0).all()
    assert len({f["origin"] for f in forecasts}) == 1  # every series' state at the same latest hour

    # The same numbers as the series asked for one at a time (another read and call each).
    for k in (0, N_SERIES - 1):
        single = client.get(FORECAST, params={"series_id": asked[k], "horizon": 24}).json()
        assert single["points"] == forecasts[k]["points"]


def test_first_read_goes_to_the_store_once(client: TestClient, many_home: Home) -> None:
    """A new reader's first read of many series is exactly one online-store read, all found."""
    from fluxora.api.online import OnlineFeatures

    c = services(client.app).store.current.forecaster.contract  # type: ignore[arg-type]
    reader = OnlineFeatures(many_home)
    states = reader.states(_ids(N_SERIES)[::-1], c.feature_service, c.state_features)
    assert reader.reads == 1
    assert states.series_ids == _ids(N_SERIES)[::-1] and not states.missing
    assert all(v.shape[0] == N_SERIES for v in states.features.values())


def test_more_series_than_the_limit_is_a_clear_422(client: TestClient) -> None:
    r = client.post(FORECAST, json={"series_ids": _ids(N_SERIES + 1)})
    assert r.status_code == 422
    assert r.json()["detail"].startswith(f"at most {N_SERIES} series per request (serve.max_series_per_request)")


def test_block_rendering_is_byte_for_byte_the_per_row_rendering() -> None:
    """`computed_rows` (one block for many series) writes what rendering each row alone with
    `json` wrote before it: the log's columns as `json.dumps`, the points compact."""
    import json

    from fluxora.api.rendering import computed_rows, iso_utc, served
    from fluxora.models.native import Forecast

    rng = np.random.default_rng(3)
    n, h = 5, 6
    point = rng.normal(100, 50, (n, h))
    point[0, :3] = [-0.0, 1e-7, 123456789012.123456]
    point[1, :2] = [2.0**60, -(2.0**53)]
    times = np.datetime64("2024-03-31T00:00:00", "ns") + np.arange(n * h).reshape(n, h) * np.timedelta64(1, "h")
    times[4] += np.timedelta64(1500, "us")  # a row with fractions of a second
    lo, hi = point - 5, point + 5
    result = Forecast(times=times, point=point, quantiles={0.1: lo, 0.9: hi})
    compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    for levels in ((), (0.9, 0.1)):
        got = computed_rows(result, [4, 0, 2], levels)
        for row, c in zip([4, 0, 2], got, strict=True):
            values = served(point[row])
            named = [(str(q), served(result.quantiles[q][row])) for q in levels]
            points = [
                {"timestamp": t, "value": v, "quantiles": {name: q[k] for name, q in named}}
                for k, (t, v) in enumerate(zip(iso_utc(times[row]), values, strict=True))
            ]
            assert c.values == json.dumps(values)
            assert c.quantiles == (json.dumps(dict(named)) if named else None)
            assert c.points_json == compact(points)
