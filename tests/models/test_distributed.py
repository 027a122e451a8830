"""The final XGBoost fit on a Dask cluster (xgboost.dask) against the serial fit on the same data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import FluxoraConfig, compose
from fluxora.paths import Home

# Three series in units of one: the design rows of each unit are built on a worker.
OVERRIDES = [*TINY_OVERRIDES, "data.n_series=3", "model=xgboost", "infra.series_per_task=1"]


class ClusterFanOut:
    """A fan-out over a plain distributed client (what `flows.fanout` gives with infra=dask)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        return iter(self.client.gather(self.client.map(fn, list(items), pure=False)))


@pytest.fixture(scope="module")
def cfg() -> FluxoraConfig:
    return compose(OVERRIDES)


@pytest.fixture(scope="module")
def featured_home(tmp_path_factory: pytest.TempPathFactory, cfg: FluxoraConfig) -> Home:
    from fluxora import steps
    from fluxora.runtime import prepare

    home = prepare(Home(tmp_path_factory.mktemp("dask-home")))
    for step in (steps.ingest, steps.validate, steps.features):
        step(cfg, home)
    return home


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0")
    # not the default client: Prefect's DaskTaskRunner does not make its client the default either
    with cluster, Client(cluster, set_as_default=False) as c:
        yield c


def _mae(model: Any, batch: Any) -> float:
    return float(np.nanmean(np.abs(model.predict(batch).point - batch.y)))


def test_dask_fit_is_close_to_the_serial_fit_and_serves(
    cfg: FluxoraConfig, featured_home: Home, client: Any, tmp_path: Path
) -> None:
    from fluxora.models.native import NativeForecaster, find_model_dir
    from fluxora.steps.features import panel as stored_panel
    from fluxora.steps.train import _fit_final

    panel = stored_panel(featured_home)
    serial = _fit_final(cfg, featured_home, panel, "xgboost")
    dask = _fit_final(cfg, featured_home, panel, "xgboost", ClusterFanOut(client))
    assert dask.contract == serial.contract
    assert dask.calibration_ is not None and dask.calibration_.shape == serial.calibration_.shape

    # the last fortnight's origins of every series, every 6 hours (seen in training by both)
    end = min(s.end for s in panel.series.values()) - np.timedelta64(24, "h")
    origins = end - np.arange(0, 14 * 24, 6) * np.timedelta64(1, "h")
    batch = panel.batch({sid: origins for sid in panel.series}, 24, 168, 24)
    serial_mae, dask_mae = _mae(serial, batch), _mae(dask, batch)
    assert abs(dask_mae - serial_mae) <= 0.05 * serial_mae, (dask_mae, serial_mae)

    # saved as today and served by the normal path: the same forecasts from the files
    served = NativeForecaster.load(find_model_dir(dask.save(tmp_path / "model")))
    expected = dask.predict(batch)
    got = served.forecast_all(batch.state(), batch.origins, batch.horizon)
    np.testing.assert_allclose(got.point, expected.point, rtol=1e-6)
    for level in served.contract.quantiles:
        np.testing.assert_allclose(got.quantiles[level], expected.quantiles[level], rtol=1e-6)


def test_serial_fan_out_keeps_the_serial_fit(cfg: FluxoraConfig, featured_home: Home) -> None:
    from fluxora.fanout import SERIAL
    from fluxora.steps.features import panel as stored_panel
    from fluxora.steps.train import _fit_final

    panel = stored_panel(featured_home)
    a = _fit_final(cfg, featured_home, panel, "xgboost", SERIAL)
    b = _fit_final(cfg, featured_home, panel, "xgboost")
    assert a.booster_.save_raw("json") == b.booster_.save_raw("json")  # same code path, seeded: identical


def test_units_leave_no_worker_without_rows() -> None:
    from fluxora.models.distributed import unit_size

    assert unit_size(20, 50, 2) == 10  # one unit of 20 would train on one worker only
    assert unit_size(1000, 50, 2) == 50
    assert unit_size(3, 1, 2) == 1
    assert unit_size(1, 50, 4) == 1
