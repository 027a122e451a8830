"""Temperature is optional: load-only and mixed sets fit every candidate, and the contract says
what the model needs; a holiday lowers a working-day forecast."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import FluxoraConfig, compose
from fluxora.data.gate import run_gate
from fluxora.data.schema import SERIES_ID, TEMPERATURE
from fluxora.data.synthetic import generate
from fluxora.features.names import FEATURE_NAMES_V1, LOAD_HISTORY, SERIES_KEY, TEMP_HISTORY
from fluxora.models.forecasters import make_forecaster
from fluxora.models.native import Contract, NativeForecaster
from fluxora.models.panel import OriginBatch, Panel

H = 24
CANDIDATES = ("seasonal_naive", "ridge", "xgboost", "prophet")


@pytest.fixture(scope="module")
def cfg() -> FluxoraConfig:
    return compose([*TINY_OVERRIDES, "model.prophet_train_days=14", "model.prophet_max_iter=100"])


def _batches(cfg: FluxoraConfig, without_temperature: list[str]) -> tuple[OriginBatch, OriginBatch]:
    """Training and test origins of the synthetic set, the listed series stripped of temperature."""
    raw = generate(cfg.data)
    raw.loc[raw[SERIES_ID].astype(str).isin(without_temperature), TEMPERATURE] = np.nan
    panel = Panel.from_frame(run_gate(raw, cfg.data.gate, cfg.data.freq, cfg.data.resolution).data)
    cut = min(s.end for s in panel.series.values()) - np.timedelta64(5 * 24, "h")
    seen = panel.until(cut)
    train = seen.batch(seen.training_origins(H, 12, 168, 24), H, 168, 24)
    test = panel.batch({sid: cut + np.arange(3) * np.timedelta64(23, "h") for sid in panel.series}, H, 168, 24)
    return train, test


# Ridge and xgboost on a load-only file also run end to end (tests/api/test_load_only_service.py).
@pytest.mark.parametrize(
    ("stripped", "mode", "names"),
    [(["series_001"], "optional", CANDIDATES), (["series_000", "series_001"], "none", ("seasonal_naive", "prophet"))],
)
def test_every_candidate_fits_and_forecasts_without_temperature(
    cfg: FluxoraConfig, stripped: list[str], mode: str, names: tuple[str, ...]
) -> None:
    train, test = _batches(cfg, stripped)
    for name in names:
        model = make_forecaster(name, cfg, H, "ex_post").fit(train.with_weather("ex_post"))
        c = model.contract
        assert c.temperature == mode, name
        assert (TEMP_HISTORY in c.state_features) == (mode == "optional"), name
        state = {LOAD_HISTORY: test.load_history, SERIES_KEY: test.series}
        if mode == "optional":  # what the online store holds: NaN history for the load-only series
            state |= {TEMP_HISTORY: test.temp_history, "target_temperature": test.temp_actual}
        forecast = NativeForecaster(model.predictor_, c).forecast(state, test.origins, H, (0.1, 0.9))  # type: ignore[arg-type]
        assert np.isfinite(forecast.point).all() and (forecast.quantiles[0.9] >= forecast.quantiles[0.1]).all(), name


def test_a_temperature_model_refuses_an_origin_without_temperature(cfg: FluxoraConfig) -> None:
    train, test = _batches(cfg, [])
    model = make_forecaster("ridge", cfg, H, "persistence").fit(train)
    assert model.contract.temperature == "required"
    temp = test.temp_history.copy()
    temp[0] = np.nan
    native = NativeForecaster(model.predictor_, model.contract)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 origin\\(s\\) have no temperature"):
        native.forecast({LOAD_HISTORY: test.load_history, TEMP_HISTORY: temp}, test.origins, H)


def test_a_holiday_lowers_a_working_day_forecast() -> None:
    """Synthetic load is lower on German public holidays; a model that sees the holiday calendar
    forecasts Ascension Day (Thursday 2024-05-09) lower than the same model told it is a plain Thursday."""
    over = ["data.start=2024-03-15", "data.days=58", "features.holiday_country=DE", "data.holidays_country=DE"]
    cfg = compose([*TINY_OVERRIDES, *over])
    panel = Panel.from_frame(run_gate(generate(cfg.data), cfg.data.gate).data)
    origin = np.datetime64("2024-05-08T23:00", "ns")  # targets: the whole of 2024-05-09 (UTC calendar)
    seen = panel.until(origin - np.timedelta64(H, "h"))
    train = seen.batch(seen.training_origins(H, 6, 168, 24), H, 168, 24)
    model = make_forecaster("ridge", cfg, H, "persistence").fit(train)
    test = panel.batch({sid: np.array([origin]) for sid in panel.series}, H, 168, 24)
    state = {LOAD_HISTORY: test.load_history, TEMP_HISTORY: test.temp_history}
    holiday = NativeForecaster(model.predictor_, model.contract).forecast(state, test.origins, H)  # type: ignore[arg-type]
    plain_contract = replace(model.contract, holiday_country="")
    plain = NativeForecaster(model.predictor_, plain_contract).forecast(state, test.origins, H)  # type: ignore[arg-type]
    assert pd.Timestamp(test.origins[0]).day == 8
    assert (holiday.point.sum(axis=1) < 0.95 * plain.point.sum(axis=1)).all()


def test_a_contract_written_before_temperature_was_optional_still_loads() -> None:
    """Models registered on feature service v1 (contract version 2) keep serving their 20 columns."""
    old = {
        "model": "ridge",
        "horizon": 24,
        "load_history_hours": 168,
        "temp_history_hours": 24,
        "heating_base_c": 15.0,
        "cooling_base_c": 22.0,
        "feature_service": "load_forecast_v1",
        "feature_names": list(FEATURE_NAMES_V1),
        "state_features": [LOAD_HISTORY, TEMP_HISTORY],
        "quantiles": [0.1, 0.5, 0.9],
        "timezone": "UTC",
        "holiday_country": "",
        "holiday_subdivision": "",
        "weather": "persistence",
        "version": 2,
    }
    contract = Contract.from_json(json.dumps(old))
    assert contract.temperature == "required" and contract.feature_names == FEATURE_NAMES_V1
    with pytest.raises(ValueError, match="different feature set"):
        Contract.from_json(json.dumps(old | {"feature_names": [*FEATURE_NAMES_V1, "bridge_day"]}))
