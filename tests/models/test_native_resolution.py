"""Native resolution: 15- and 30-minute series are modelled at their own step (data.freq: auto),
horizons and windows count in steps, baselines use a day and a week of steps, points are stamped
at the model's step; hourly contracts without the field still load."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import compose
from fluxora.data.gate import auto_model_freq, run_gate
from fluxora.data.resolution import Resolution
from fluxora.data.schema import LOAD, SERIES_ID, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.features.build import origin_states
from fluxora.features.design import Calendar, design_matrix
from fluxora.features.names import FEATURE_NAMES, LOAD_HISTORY, SERIES_KEY, TEMP_HISTORY
from fluxora.models import backtest as bt
from fluxora.models.forecasters import make_forecaster
from fluxora.models.native import Contract, NativeForecaster
from fluxora.models.panel import Panel


@pytest.mark.parametrize(("resolution", "per_hour"), [("30min", 2), ("15min", 4)])
def test_sub_hourly_series_forecast_at_their_own_step(resolution: str, per_hour: int, tmp_path) -> None:
    overrides = ["data.days=24", "train.min_train_days=7", f"data.resolution={resolution}", "train.horizon=24h"]
    cfg = compose([*TINY_OVERRIDES, *overrides])
    assert cfg.data.freq == "auto"
    validated = run_gate(generate(cfg.data), cfg.data.gate, "auto", cfg.data.resolution).data
    step = np.diff(validated.loc[validated[SERIES_ID] == validated[SERIES_ID].iat[0], TIMESTAMP].to_numpy())
    assert (step == np.timedelta64(60 // per_hour, "m")).all()  # not averaged to hourly

    states = origin_states(validated, cfg.features)  # a week of load in steps, a day of temperature
    assert len(states.column(LOAD_HISTORY)[0]) == 168 * per_hour
    assert len(states.column(TEMP_HISTORY)[0]) == 24 * per_hour

    panel = Panel.from_frame(validated)
    spec = bt.resolve(cfg, panel)
    day = 24 * per_hour
    assert spec.horizon == day and spec.resolution == resolution  # "24h" = 48 or 96 steps
    assert (spec.load_history_steps, spec.temp_history_steps) == (168 * per_hour, 24 * per_hour)
    train = bt.training_batch(panel, spec.origins[0], spec, 0)
    test = bt.evaluation_batch(panel, spec.origins[-1], spec, 3)
    assert test is not None
    for name in ("ridge", "seasonal_naive_daily", "seasonal_naive_weekly"):
        model = make_forecaster(name, cfg, spec.horizon, "persistence").fit(train)
        assert model.contract.resolution == resolution
        model.save(tmp_path / name)
        served = NativeForecaster.load(tmp_path / name)  # what the service loads
        assert served.contract.resolution == resolution
        state = {LOAD_HISTORY: test.load_history, TEMP_HISTORY: test.temp_history, SERIES_KEY: test.series}
        out = served.forecast(state, test.origins, spec.horizon)
        assert out.point.shape == (len(test), day)
        gaps = np.diff(np.concatenate([test.origins[:, None], out.times], axis=1), axis=1)
        assert (gaps == np.timedelta64(60 // per_hour, "m")).all()  # points every 30 / 15 minutes
        if name == "seasonal_naive_daily":  # the same time a day (48 / 96 steps) earlier
            np.testing.assert_allclose(out.point[:, 0], test.load_history[:, -day])
        if name == "seasonal_naive_weekly":  # a week is 336 / 672 steps
            np.testing.assert_allclose(out.point[:, 0], test.load_history[:, -168 * per_hour])
        if name == "ridge":  # a real fit at the native step: finite and close to the actuals
            assert np.isfinite(out.point).all()
            assert np.nanmean(np.abs(out.point - test.y)) < 0.2 * np.nanmean(test.y)


def test_auto_resolution_is_the_coarsest_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    stamps = {
        "a": pd.date_range("2024-01-01", periods=20, freq="15min", tz="UTC"),
        "b": pd.date_range("2024-01-01", periods=20, freq="30min", tz="UTC"),
    }
    raw = pd.concat([pd.DataFrame({SERIES_ID: sid, TIMESTAMP: ts, LOAD: 1.0}) for sid, ts in stamps.items()])
    with caplog.at_level(logging.WARNING, logger="fluxora.data"):
        assert auto_model_freq([raw]) == "30min"
    assert "data.freq" in caplog.text and "15min" in caplog.text
    assert auto_model_freq([raw[raw[SERIES_ID] == "a"]]) == "15min"
    assert auto_model_freq([raw], "h") == "h"  # a configured source resolution is the model's


def test_dst_days_have_92_and_100_quarter_hours() -> None:
    res = Resolution.parse("15min")
    cal = Calendar("Europe/Berlin")
    for day, expected in (("2024-03-31", 92), ("2024-10-27", 100)):
        # origin: local midnight of the day before; three days of quarter-hours ahead cover the day
        origin = pd.Timestamp(day, tz="Europe/Berlin") - pd.Timedelta(days=1)
        origins = np.array([origin.tz_convert("UTC").tz_localize(None).to_datetime64()], dtype="datetime64[ns]")
        load = np.ones((1, res.week))
        d = design_matrix(load, None, origins, 3 * res.day, 15.0, 22.0, calendar=cal, resolution=res)
        local = pd.DatetimeIndex(d.target_times).tz_localize("UTC").tz_convert("Europe/Berlin")
        assert int((local.strftime("%Y-%m-%d") == day).sum()) == expected
        days = (d.X[:, FEATURE_NAMES.index("dayofweek")] == 6).sum()  # both are Sundays: the same count
        assert days == expected
        hours = d.X[:, FEATURE_NAMES.index("hour")]
        on_day = local.strftime("%Y-%m-%d") == day
        assert np.allclose(hours[on_day], local[on_day].hour + local[on_day].minute / 60.0)  # a fraction


def test_hourly_contract_without_resolution_still_loads() -> None:
    cfg = compose(TINY_OVERRIDES)
    contract = make_forecaster("ridge", cfg, 24, "persistence").contract
    raw = json.loads(contract.to_json())
    assert raw["resolution"] == "h" and raw["version"] == 4
    del raw["resolution"]
    raw["version"] = 3  # what models registered before this change carry
    old = Contract.from_json(json.dumps(raw))
    assert old.resolution == "h" and old.load_history_steps == old.load_history_hours == 168
    with pytest.raises(ValueError, match="resolution"):
        Contract.from_json(json.dumps(json.loads(contract.to_json()) | {"resolution": "7min"}))


def test_horizon_as_duration_or_steps() -> None:
    half = Resolution.parse("30min")
    assert half.horizon("24h") == 48 and half.horizon(48) == 48 and half.horizon("90min") == 3
    assert Resolution().horizon("24h") == Resolution().horizon(24) == 24  # hourly: steps are hours
    with pytest.raises(ValueError, match="whole number"):
        half.horizon("45min")
    with pytest.raises(ValueError, match="duration"):
        half.horizon("tomorrow")
