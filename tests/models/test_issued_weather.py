"""Issue 12: backtests see weather forecasts only as they were issued before each origin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import FluxoraConfig, compose
from fluxora.data import weather_forecast
from fluxora.data.gate import run_gate
from fluxora.data.schema import ISSUED_AT, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.errors import ConfigError
from fluxora.features.weather import IssuedLookup, forecast_states
from fluxora.models import backtest as bt
from fluxora.models.panel import Panel


@pytest.fixture(scope="module")
def cfg() -> FluxoraConfig:
    return compose([*TINY_OVERRIDES, "data.weather_forecast.provider=synthetic", "backtest.models=[ridge]"])


@pytest.fixture(scope="module")
def data(cfg: FluxoraConfig) -> pd.DataFrame:
    return run_gate(generate(cfg.data), cfg.data.gate, cfg.data.freq, cfg.data.resolution).data


@pytest.fixture(scope="module")
def vintages(cfg: FluxoraConfig, data: pd.DataFrame) -> pd.DataFrame:
    screened = weather_forecast.collect(cfg.data, data, Path("."))
    assert screened is not None and sum(screened.dropped.values()) == 0
    return screened.forecasts


def _panel(cfg: FluxoraConfig, data: pd.DataFrame, vintages: pd.DataFrame) -> Panel:
    wf = cfg.data.weather_forecast
    last = {
        str(s): np.datetime64(t.tz_convert(None), "ns") for s, t in data.groupby(SERIES_ID)[TIMESTAMP].max().items()
    }
    return Panel.from_frame(data, IssuedLookup(forecast_states(vintages, wf.hours, wf.max_age_hours, last)))


def test_synthetic_forecast_error_grows_with_lead(data: pd.DataFrame, vintages: pd.DataFrame) -> None:
    observed = data.set_index([SERIES_ID, TIMESTAMP])[TEMPERATURE]
    v = vintages.join(observed.rename("observed"), on=[SERIES_ID, "target_time"]).dropna(subset=["observed"])
    lead = (v["target_time"] - v[ISSUED_AT]) // pd.Timedelta(hours=1)
    error = (v[TEMPERATURE] - v["observed"]).groupby(lead).std()
    assert 0.1 < error[1] < error[12] < error[24] < error[48]
    assert 1.0 < error[24] < 2.2  # data.weather_forecast.synthetic_error_c = 1.5 at a day ahead


def test_backtest_forecasts_do_not_move_when_later_vintages_change(
    cfg: FluxoraConfig, data: pd.DataFrame, vintages: pd.DataFrame
) -> None:
    panel = _panel(cfg, data, vintages)
    spec = bt.resolve(cfg, panel, weather="issued")
    cut = pd.Timestamp(spec.origins[1]).tz_localize("UTC")
    corrupted = vintages.copy()
    later = corrupted[ISSUED_AT] > cut
    corrupted.loc[later, TEMPERATURE] += 25.0
    moved = _panel(cfg, data, corrupted)
    a = bt.run(panel, cfg, ["ridge"], spec).runs["ridge"].point
    b = bt.run(moved, cfg, ["ridge"], spec).runs["ridge"].point
    windows = len(spec.origins)
    per_window = a.reshape(windows, -1, a.shape[1]), b.reshape(windows, -1, b.shape[1])
    # Origins at or before the cut see only vintages issued by then: the forecasts are identical.
    np.testing.assert_array_equal(per_window[0][:2], per_window[1][:2])
    # Later origins read the corrupted vintages (the test would notice a leak the other way).
    assert not np.allclose(per_window[0][2:], per_window[1][2:])


def test_issued_mode_needs_a_forecast_source(cfg: FluxoraConfig, data: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"data\.weather_forecast"):
        bt.resolve(cfg, Panel.from_frame(data), weather="issued")
    assert bt.weather_mode(cfg, "auto") == "issued"
    assert bt.weather_mode(compose(TINY_OVERRIDES), "auto") == "persistence"


def test_a_30_minute_backtest_reads_issued_weather_at_every_step_off_the_hour() -> None:
    """Hourly vintages (as a weather service issues them) serve a 30-minute model: an origin at
    hh:30 has its own forecast row, and each half-hour step lies halfway between its hours."""
    from fluxora.steps.weather import forecast_table

    cfg = compose(
        [*TINY_OVERRIDES, "data.weather_forecast.provider=synthetic", "data.resolution=30min", "train.horizon=24h"]
    )
    data = run_gate(generate(cfg.data), cfg.data.gate, cfg.data.freq, cfg.data.resolution).data
    screened = weather_forecast.collect(cfg.data, data, Path("."))
    assert screened is not None and sum(screened.dropped.values()) == 0
    vintages = screened.forecasts
    assert (vintages["target_time"] == vintages["target_time"].dt.floor("h")).all()  # whole hours
    panel = Panel.from_frame(data, IssuedLookup(forecast_table(cfg, vintages, data)))
    sid = next(iter(panel.series))
    origin = panel.series[sid].end - np.timedelta64(3 * 24 * 60 + 60, "m")  # 3 days before the end (23:30)
    assert (origin.astype("datetime64[m]").astype("int64") % 60) == 30
    batch = panel.batch({sid: np.array([origin])}, 48, 336, 48).with_weather("issued")
    issued = batch.target_temp
    assert issued is not None and issued.shape == (1, 48) and np.isfinite(issued).all()
    # Steps 1, 3, 5, ... are whole hours; the others lie halfway between their neighbours.
    np.testing.assert_allclose(issued[0, 1:-1:2], (issued[0, 0:-2:2] + issued[0, 2::2]) / 2, rtol=1e-5)
