"""Data and schema models: the synthetic generator, origin states, the contract."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fluxora.config import DataConfig, FeaturesConfig, GateConfig
from fluxora.data.gate import run_gate
from fluxora.data.schema import CANONICAL_COLUMNS, LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.errors import InsufficientDataError
from fluxora.features.build import origin_states
from fluxora.features.names import EVENT_TIMESTAMP, LOAD_HISTORY, TEMP_HISTORY
from fluxora.models.native import Contract, find_model_dir


@pytest.fixture(scope="module")
def year() -> pd.DataFrame:
    return generate(DataConfig(n_series=3, days=366))


def test_generator_canonical_format(year: pd.DataFrame) -> None:
    assert tuple(year.columns) == CANONICAL_COLUMNS
    assert str(year[TIMESTAMP].dt.tz) == "UTC"
    assert year[SERIES_ID].nunique() == 3
    per_series = year.groupby(SERIES_ID)[TIMESTAMP].agg(["min", "max", "count"])
    assert (per_series["count"] == 366 * 24).all()
    assert ((per_series["max"] - per_series["min"]) >= pd.Timedelta(days=365)).all()
    assert np.isfinite(year[[LOAD, TEMPERATURE]].to_numpy()).all()
    assert (year[LOAD] > 0).all()


def test_generator_is_deterministic_and_seeded() -> None:
    cfg = DataConfig(n_series=2, days=10)
    pd.testing.assert_frame_equal(generate(cfg), generate(cfg))
    assert not generate(cfg).equals(generate(replace(cfg, seed=cfg.seed + 1)))


def test_generator_has_daily_weekly_and_annual_cycles(year: pd.DataFrame) -> None:
    one = year[year[SERIES_ID] == "series_000"].set_index(TIMESTAMP)
    by_hour = one[LOAD].groupby(one.index.hour).mean()
    assert by_hour.max() / by_hour.min() > 1.2  # daily profile
    weekday = one[LOAD][one.index.dayofweek < 5].mean()
    weekend = one[LOAD][one.index.dayofweek >= 5].mean()
    assert weekend < 0.95 * weekday  # weekly cycle
    monthly_temp = one[TEMPERATURE].groupby(one.index.month).mean()
    assert monthly_temp.max() - monthly_temp.min() > 10  # annual cycle


def test_generator_load_responds_to_temperature(year: pd.DataFrame) -> None:
    for _, one in year.groupby(SERIES_ID):
        daily = one.set_index(TIMESTAMP)[[LOAD, TEMPERATURE]].resample("D").mean()
        cold = daily[daily[TEMPERATURE] < 5][LOAD].mean()
        mild = daily[(daily[TEMPERATURE] > 15) & (daily[TEMPERATURE] < 20)][LOAD].mean()
        assert cold > 1.1 * mild  # heating load


def test_generator_rejects_empty_request() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate(DataConfig(n_series=0))


def test_origin_states_end_at_the_origin() -> None:
    cfg = FeaturesConfig()
    data = run_gate(generate(DataConfig(n_series=2, days=10)), GateConfig(min_series_days=0)).data
    states = origin_states(data, cfg).to_pandas()
    per_series = len(data) // 2 - cfg.load_history_hours + 1
    assert len(states) == 2 * per_series
    row = states.iloc[50]
    one = data[data[SERIES_ID] == row[SERIES_ID]].set_index(TIMESTAMP)
    window = one.loc[: row[EVENT_TIMESTAMP]]
    np.testing.assert_allclose(row[LOAD_HISTORY], window[LOAD].iloc[-cfg.load_history_hours :], rtol=1e-6)
    np.testing.assert_allclose(row[TEMP_HISTORY], window[TEMPERATURE].iloc[-cfg.temp_history_hours :], rtol=1e-6)
    assert window.index[-1] == row[EVENT_TIMESTAMP]  # the last value is at the origin, none after


def test_origin_states_need_a_full_week() -> None:
    data = run_gate(generate(DataConfig(n_series=1, days=5)), GateConfig(min_series_days=0)).data
    with pytest.raises(InsufficientDataError, match="history"):
        origin_states(data, FeaturesConfig())


def _contract() -> Contract:
    return Contract(
        model="xgboost",
        horizon=24,
        load_history_hours=168,
        temp_history_hours=24,
        heating_base_c=15.0,
        cooling_base_c=22.0,
        feature_service="load_forecast_v1",
    )


def test_contract_round_trip() -> None:
    c = _contract()
    assert Contract.from_json(c.to_json()) == c


def test_contract_rejects_other_versions_and_features() -> None:
    raw = json.loads(_contract().to_json())
    with pytest.raises(ValueError, match="version"):
        Contract.from_json(json.dumps(raw | {"version": 99}))
    with pytest.raises(ValueError, match="feature set"):
        Contract.from_json(json.dumps(raw | {"feature_names": ["step"]}))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        json.dumps({k: v for k, v in json.loads(_contract().to_json()).items() if k != "horizon"}),
        json.dumps(json.loads(_contract().to_json()) | {"surprise": 1}),
    ],
)
def test_malformed_contract_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="contract"):
        Contract.from_json(text)


def test_find_model_dir_requires_exactly_one_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="found 0"):
        find_model_dir(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "contract.json").write_text(_contract().to_json())
        (tmp_path / name / "model.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="found 2"):
        find_model_dir(tmp_path)
    (tmp_path / "b" / "model.json").unlink()
    assert find_model_dir(tmp_path) == tmp_path / "a"


# --- API schemas (fluxora.api.schemas) ---------------------------------------------------------


def test_forecast_request_schema_bounds() -> None:
    from pydantic import ValidationError

    from fluxora.api.schemas import MAX_HORIZON, MAX_SERIES_PER_REQUEST, ForecastRequest

    ok = ForecastRequest(series_ids=["a"])
    assert ok.horizon is None and ok.quantiles == []  # left out: the route answers a day ahead (at most the model's)
    assert (
        ForecastRequest(series_ids=["a"] * MAX_SERIES_PER_REQUEST, horizon=MAX_HORIZON, quantiles=[0.1, 0.9]).horizon
        == 672  # steps: a week at 15 minutes (each model's own horizon is checked when it answers)
    )
    assert ForecastRequest(series_ids=["a"], horizon="24h").horizon == "24h"
    for bad in (
        {"series_ids": []},
        {"series_ids": ["a"] * (MAX_SERIES_PER_REQUEST + 1)},
        {"series_ids": [""]},
        {"series_ids": ["x" * 201]},
        {"series_ids": ["a"], "horizon": 0},
        {"series_ids": ["a"], "horizon": MAX_HORIZON + 1},
        {"series_ids": ["a"], "horizon": "a day"},
        {"series_ids": ["a"], "quantiles": [0.0]},
        {"series_ids": ["a"], "quantiles": [1.0]},
        {"series_ids": ["a"], "other": 1},
    ):
        with pytest.raises(ValidationError):
            ForecastRequest.model_validate(bad)


def test_predict_instance_schema_requires_finite_values_and_known_fields() -> None:
    from pydantic import ValidationError

    from fluxora.api.schemas import PredictInstance, PredictRequest

    inst = {"series_id": "a", "origin": "2024-01-01T00:00:00Z", "features": {"load_history": [1.0, 2.0]}}
    parsed = PredictRequest.model_validate({"instances": [inst]})
    assert parsed.instances[0].origin.utcoffset() is not None
    for bad_values in ([float("nan")], [float("inf")], [1.0, float("-inf")]):
        with pytest.raises(ValidationError, match="finite"):
            PredictInstance.model_validate(inst | {"features": {"load_history": bad_values}})
    with pytest.raises(ValidationError):
        PredictInstance.model_validate(inst | {"extra": True})
    with pytest.raises(ValidationError):
        PredictRequest.model_validate({"instances": []})


def test_key_create_schema() -> None:
    from pydantic import ValidationError

    from fluxora.api.schemas import KeyCreate

    assert KeyCreate(name="n").role == "reader" and KeyCreate(name="n").series is None
    assert KeyCreate(name="n", role="admin", series=["a"]).series == ["a"]
    for bad in (
        {"name": ""},
        {"name": "n", "role": "root"},
        {"name": "n", "series": []},
        {"name": "n", "series": [""]},
    ):
        with pytest.raises(ValidationError):
            KeyCreate.model_validate(bad)


def test_created_key_is_the_only_schema_with_the_secret() -> None:
    from fluxora.api import schemas

    with_key = {
        name
        for name, obj in vars(schemas).items()
        if isinstance(obj, type) and issubclass(obj, schemas.BaseModel) and "key" in obj.model_fields
    }
    assert with_key == {"KeyCreated"}
    assert not any("hash" in f for f in schemas.KeyInfo.model_fields)
