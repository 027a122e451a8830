"""Behaviour a load forecaster must show (issue 13), checked on fitted models, no accuracy
thresholds: more load on a colder day for a series that heats, less on a public holiday than
on the same working day without one, and the v5 design's last-week columns."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import FluxoraConfig, compose
from fluxora.data.gate import run_gate
from fluxora.data.synthetic import generate
from fluxora.features.design import design_matrix
from fluxora.features.names import FEATURE_NAMES_V5
from fluxora.models.forecasters import Forecaster, make_forecaster
from fluxora.models.panel import HOUR, OriginBatch, Panel

H = 24
MODELS = ("ridge", "xgboost")
# Winter with Christmas: heating load, and DE holidays on Monday 25 and Tuesday 26 December 2023.
WINTER = [*TINY_OVERRIDES, "data.start=2023-10-01", "data.days=100", "features.feature_service=load_forecast_v5"]


@pytest.fixture(scope="module")
def cfg() -> FluxoraConfig:
    return compose(WINTER)


@pytest.fixture(scope="module")
def panel(cfg: FluxoraConfig) -> Panel:
    data = run_gate(generate(cfg.data), cfg.data.gate, cfg.data.freq, cfg.data.resolution).data
    return Panel.from_frame(data)


@pytest.fixture(scope="module")
def fitted(cfg: FluxoraConfig, panel: Panel) -> dict[str, Forecaster]:
    """Fitted on every origin (holidays included) with the observed target temperature."""
    train = panel.batch(panel.training_origins(H, 6, 168, 24), H, 168, 24).with_weather("ex_post")
    return {name: make_forecaster(name, cfg, H, "ex_post").fit(train) for name in MODELS}


def _state_at(panel: Panel, origin: str) -> OriginBatch:
    t = np.datetime64(origin, "ns")
    return panel.batch({sid: np.array([t]) for sid in panel.series}, H, 168, 24).with_weather("ex_post")


@pytest.mark.parametrize("name", MODELS)
def test_a_colder_day_gets_more_load(name: str, fitted: dict[str, Forecaster], panel: Panel) -> None:
    batch = _state_at(panel, "2023-12-05T23:00")
    assert batch.target_temp is not None and np.nanmean(batch.target_temp) < 15  # heating weather
    mild = fitted[name].predict(batch).point
    cold = fitted[name].predict(replace(batch, target_temp=batch.target_temp - 8.0)).point
    assert (cold.mean(axis=1) > mild.mean(axis=1)).all()


@pytest.mark.parametrize("name", MODELS)
def test_a_holiday_lowers_a_working_day(name: str, fitted: dict[str, Forecaster], panel: Panel) -> None:
    """The same state (Sunday 24 December's) forecast for Monday 25 December (a holiday) and,
    calendar moved one week back, for Monday 18 December (a working day)."""
    batch = _state_at(panel, "2023-12-24T23:00")
    week_before = replace(batch, origins=batch.origins - 7 * 24 * HOUR)
    holiday = fitted[name].predict(batch).point
    working = fitted[name].predict(week_before).point
    assert (holiday.mean(axis=1) < working.mean(axis=1)).all()


def test_v5_last_week_columns() -> None:
    """Day d's same-hour load is d x 24 h before the latest observed one; the day-type profile
    averages only the days of the target's kind (here: the working days)."""
    load = np.tile(np.arange(1.0, 169.0), (1, 1))  # load = hour index + 1, so values name hours
    origin = np.array(["2024-01-11T23:00"], dtype="datetime64[ns]")  # Thursday; targets Friday
    d = design_matrix(load, None, origin, H, 15.0, 22.0, features=FEATURE_NAMES_V5)
    col = {n: i for i, n in enumerate(FEATURE_NAMES_V5)}
    x = d.X.astype("float64") * d.scale[:, None]
    first = 168 - 24 + 1  # the same hour as step 1 on the latest observed day (Thursday)
    for day in range(2, 7):
        assert x[0, col[f"lag_same_hour_d{day}"]] == pytest.approx(first - 24 * (day - 1))
    days = first - 24 * np.arange(7)  # Thu, Wed, Tue, Mon, Sun, Sat, Fri
    assert x[0, col["profile_same_hour_7d"]] == pytest.approx(days.mean())
    assert x[0, col["profile_same_daytype_7d"]] == pytest.approx(days[[0, 1, 2, 3, 6]].mean())
