"""Forecasters: native save/load round trips, quantiles, the serving seam, calendar features."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_OVERRIDES, train_test_batches
from fluxora.config import FluxoraConfig, compose
from fluxora.features.design import COL, Calendar, design_matrix, linear_basis, seasonal_naive
from fluxora.features.names import FEATURE_NAMES, LOAD_HISTORY, SERIES_KEY, TARGET_TEMPERATURE, TEMP_HISTORY
from fluxora.models.forecasters import Forecaster, make_forecaster
from fluxora.models.native import NativeForecaster
from fluxora.models.panel import OriginBatch

H = 24


@pytest.fixture(scope="module")
def cfg() -> FluxoraConfig:
    return compose([*TINY_OVERRIDES, "model.prophet_train_days=21", "model.prophet_max_iter=200"])


@pytest.fixture(scope="module")
def batches(cfg: FluxoraConfig) -> tuple[OriginBatch, OriginBatch]:
    """Training origins before the last 5 days; test origins at 4 later times."""
    return train_test_batches(cfg, H)


@pytest.fixture(scope="module")
def fitted(cfg: FluxoraConfig, batches: tuple[OriginBatch, OriginBatch]) -> dict[str, Forecaster]:
    train, _ = batches
    return {
        name: make_forecaster(name, cfg, H, "persistence").fit(train) for name in ("xgboost", "ridge", "seasonal_naive")
    }


@pytest.mark.parametrize("name", ["xgboost", "ridge", "seasonal_naive"])
def test_native_round_trip_and_quantiles(
    name: str, fitted: dict[str, Forecaster], batches: tuple[OriginBatch, OriginBatch], tmp_path: Path
) -> None:
    _, test = batches
    model = fitted[name]
    before = model.predict(test)
    model.save(tmp_path)
    for path in tmp_path.iterdir():  # native formats only: every file is JSON, nothing pickled
        json.loads(path.read_text())
    loaded = NativeForecaster.load(tmp_path)
    state = {LOAD_HISTORY: test.load_history, TEMP_HISTORY: test.temp_history}  # what serving has
    after = loaded.forecast(state, test.origins, H, (0.1, 0.5, 0.9))
    np.testing.assert_allclose(after.point, before.point, rtol=1e-6)
    assert after.point.shape == (len(test), H)
    assert set(after.quantiles) == {0.1, 0.5, 0.9}
    q = np.stack([after.quantiles[lv] for lv in (0.1, 0.5, 0.9)])
    assert np.isfinite(q).all()
    assert (np.diff(q, axis=0) >= 0).all()  # never crossing
    assert (q[2] - q[0] > 0).mean() > 0.9  # a real interval, not a point
    # any horizon up to the maximum, same values as the full one
    short = loaded.forecast(state, test.origins, 5, (0.9,))
    np.testing.assert_allclose(short.point, after.point[:, :5], rtol=1e-6)
    with pytest.raises(ValueError, match="quantiles"):
        loaded.forecast(state, test.origins, H, (0.25,))
    with pytest.raises(ValueError, match="horizon"):
        loaded.forecast(state, test.origins, H + 1)


def test_models_beat_naive_on_synthetic_holdout(
    fitted: dict[str, Forecaster], batches: tuple[OriginBatch, OriginBatch]
) -> None:
    _, test = batches
    naive_mae = np.nanmean(np.abs(seasonal_naive(test.load_history, H, 24).reshape(-1, H) - test.y))
    for name in ("xgboost", "ridge"):
        mae = np.nanmean(np.abs(fitted[name].predict(test).point - test.y))
        assert mae < naive_mae, name


def test_seasonal_naive_point_is_the_lag(
    fitted: dict[str, Forecaster], batches: tuple[OriginBatch, OriginBatch]
) -> None:
    _, test = batches
    model = fitted["seasonal_naive"]
    season = model.season_  # type: ignore[attr-defined]
    expected = seasonal_naive(test.load_history, H, season).reshape(-1, H)
    np.testing.assert_array_equal(model.predict(test).point, expected)


def test_xgboost_interval_covers_training_data_at_least_nominally(
    fitted: dict[str, Forecaster], batches: tuple[OriginBatch, OriginBatch]
) -> None:
    # calibrated on held-out origins, so on the data it was fitted to it covers more than 80 %
    # (held-out coverage is tested in test_calibration.py)
    train, _ = batches
    fc = fitted["xgboost"].predict(train)
    inside = (train.y >= fc.quantiles[0.1]) & (train.y <= fc.quantiles[0.9])
    assert inside[np.isfinite(train.y)].mean() > 0.75
    assert (fc.quantiles[0.9] > fc.quantiles[0.1]).mean() > 0.99


def test_target_weather_model_needs_target_temperature(
    cfg: FluxoraConfig, batches: tuple[OriginBatch, OriginBatch], tmp_path: Path
) -> None:
    train, test = batches
    model = make_forecaster("ridge", cfg, H, "ex_post").fit(train.with_weather("ex_post"))
    assert TARGET_TEMPERATURE in model.contract.state_features
    model.save(tmp_path)
    loaded = NativeForecaster.load(tmp_path)
    state = {LOAD_HISTORY: test.load_history, TEMP_HISTORY: test.temp_history}
    with pytest.raises(ValueError, match="missing state"):
        loaded.forecast(state, test.origins, H)
    hot = loaded.forecast(state | {TARGET_TEMPERATURE: test.temp_actual + 15}, test.origins, H)
    ok = loaded.forecast(state | {TARGET_TEMPERATURE: test.temp_actual}, test.origins, H)
    assert not np.allclose(hot.point, ok.point)  # the target temperature is really used


def test_prophet_per_series_round_trip(
    cfg: FluxoraConfig, batches: tuple[OriginBatch, OriginBatch], tmp_path: Path
) -> None:
    train, test = batches
    one = np.flatnonzero(train.series == "series_000")
    pcfg = replace(cfg, features=replace(cfg.features, holiday_country="GB"))
    model = make_forecaster("prophet", pcfg, H, "persistence").fit(train.take(one))
    assert SERIES_KEY in model.contract.state_features
    rows = np.flatnonzero(test.series == "series_000")
    before = model.predict(test.take(rows))
    model.save(tmp_path)
    assert "prophet" in json.loads((tmp_path / "model.json").read_text())["kind"]
    loaded = NativeForecaster.load(tmp_path)
    after = loaded.forecast(test.take(rows).state(), test.origins[rows], H, (0.1, 0.9))
    np.testing.assert_allclose(after.point, before.point, rtol=1e-6)
    assert (after.quantiles[0.9] >= after.quantiles[0.1]).all()
    mape = np.nanmean(np.abs(after.point - test.y[rows]) / test.y[rows])
    assert mape < 0.25
    # several origins of one series in one call, in any order, each get their own forecast
    # (Prophet sorts its input by time; the origins here are 23 h apart, their targets overlap)
    backwards = test.take(rows[::-1])
    joint = loaded.forecast(backwards.state(), backwards.origins, H, (0.1, 0.9))
    for k in range(len(rows)):
        alone = loaded.forecast(backwards.take(np.array([k])).state(), backwards.origins[k : k + 1], H, (0.1, 0.9))
        np.testing.assert_allclose(joint.point[k], alone.point[0], rtol=1e-9)
        np.testing.assert_allclose(joint.quantiles[0.9][k], alone.quantiles[0.9][0], rtol=1e-9)
    with pytest.raises(ValueError, match="no series"):
        loaded.forecast(test.take(rows).state() | {SERIES_KEY: np.array(["nope"] * len(rows))}, test.origins[rows], H)


def test_ridge_coefficients_match_sklearn_ridge() -> None:
    from sklearn.linear_model import Ridge

    from fluxora.models.forecasters import ridge_coefficients

    rng = np.random.default_rng(0)
    z = rng.normal(size=(5000, 30)).astype("float32")
    z[:, 7] = 0.0  # a constant column (e.g. no holidays): only the penalty keeps it at zero
    y = z @ rng.normal(size=30) + 3.0 + rng.normal(size=5000)
    expected = Ridge(alpha=2.0).fit(z.astype("float64"), y)
    coef, intercept = ridge_coefficients(z, y, 2.0, chunk=700)  # several chunks, a ragged last one
    np.testing.assert_allclose(coef, expected.coef_, atol=1e-9)
    assert intercept == pytest.approx(expected.intercept_, abs=1e-9)


# --- calendar and temperature features ----------------------------------------------------------


def _design(origins: list[str], calendar: Calendar, target: np.ndarray | None = None, horizon: int = 24):  # type: ignore[no-untyped-def]
    n = len(origins)
    load = np.ones((n, 168))
    temp = np.full((n, 24), 10.0)
    stamps = pd.DatetimeIndex(origins).to_numpy(dtype="datetime64[ns]")
    return design_matrix(load, temp, stamps, horizon, 15.0, 22.0, target_temperature=target, calendar=calendar)


def test_local_hour_follows_dst() -> None:
    # 2024-07-01 10:00 UTC is 11:00 in London (BST); 2024-01-15 10:00 UTC is 10:00 (GMT).
    d = _design(["2024-07-01 09:00", "2024-01-15 09:00"], Calendar("Europe/London"), horizon=1)
    np.testing.assert_array_equal(d.X[:, COL["hour"]], [11, 10])
    utc = _design(["2024-07-01 09:00"], Calendar("UTC"), horizon=1)
    assert utc.X[0, COL["hour"]] == 10


def test_holiday_and_working_day_flags() -> None:
    # Origin 2024-12-24 23:00 UTC: steps 1..24 fall on Christmas Day (a Wednesday).
    d = _design(["2024-12-24 23:00"], Calendar("Europe/London", "GB", "ENG"), horizon=24)
    assert (d.X[:, COL["holiday"]] == 1).all()
    assert (d.X[:, COL["working_day"]] == 0).all()
    assert (d.X[:, COL["lag_day_working"]] == 1).all()  # Christmas Eve 2024 was a working Tuesday
    plain = _design(["2024-12-24 23:00"], Calendar("Europe/London"), horizon=24)
    assert (plain.X[:, COL["holiday"]] == 0).all() and (plain.X[:, COL["working_day"]] == 1).all()


def test_target_temperature_drives_degree_terms() -> None:
    target = np.full((1, 24), 30.0)
    d = _design(["2024-07-01 00:00"], Calendar(), target=target)
    np.testing.assert_allclose(d.X[:, COL["temp_target"]], 30.0)
    np.testing.assert_allclose(d.X[:, COL["cooling_degrees"]], 8.0)
    np.testing.assert_allclose(d.X[:, COL["heating_degrees"]], 0.0)
    np.testing.assert_allclose(d.X[:, COL["temp_change"]], 20.0)
    persistence = _design(["2024-07-01 00:00"], Calendar())
    np.testing.assert_allclose(persistence.X[:, COL["temp_target"]], 10.0)  # same hour yesterday
    np.testing.assert_allclose(persistence.X[:, COL["heating_degrees"]], 5.0)


def test_linear_basis_crosses_hour_with_season_and_temperature() -> None:
    d = _design(["2024-01-01 00:00", "2024-07-01 00:00"], Calendar(), target=np.full((2, 24), 5.0))
    basis = linear_basis(d.X)
    assert basis.shape[0] == d.X.shape[0] and basis.shape[1] > len(FEATURE_NAMES) + 24 * 5
    assert np.isfinite(basis).all()
    # one row per hour: the per-hour heating column is non-zero only at that row's hour
    plain = len(FEATURE_NAMES) - 3
    heating_block = basis[:24, plain + 4 * 24 : plain + 5 * 24]
    np.testing.assert_allclose(heating_block, np.diag(np.full(24, 10.0))[np.roll(np.arange(24), -1)])


def test_xgboost_corrects_a_ridge_base_stored_as_json(
    cfg: FluxoraConfig, batches: tuple[OriginBatch, OriginBatch], tmp_path: Path
) -> None:
    """`model.xgb_base=ridge`: the point booster starts from ridge on the same rows; ridge.json
    is saved with it and serving adds it back; the trees change ridge's forecast."""
    from fluxora.models.native import XGB_BASE_FILE, XGBoostPredictor

    train, test = batches
    based = replace(cfg, model=replace(cfg.model, xgb_base="ridge"))
    model = make_forecaster("xgboost", based, H, "persistence").fit(train)
    assert isinstance(model.predictor_, XGBoostPredictor) and model.predictor_.base is not None
    model.save(tmp_path)
    assert json.loads((tmp_path / XGB_BASE_FILE).read_text())["kind"] == "ridge"
    loaded = NativeForecaster.load(tmp_path)
    assert isinstance(loaded.predictor, XGBoostPredictor) and loaded.predictor.base is not None
    state = {LOAD_HISTORY: test.load_history, TEMP_HISTORY: test.temp_history}
    served = loaded.forecast(state, test.origins, H).point
    np.testing.assert_allclose(served, model.predict(test).point, rtol=1e-6)
    ridge_alone = make_forecaster("ridge", cfg, H, "persistence").fit(train).predict(test).point
    assert not np.allclose(served, ridge_alone, rtol=1e-3)


def test_xgboost_default_has_no_base_file(fitted: dict[str, Forecaster], tmp_path: Path) -> None:
    """The default (`model.xgb_base=none`), like every model saved before the base existed: no
    ridge.json, the booster alone (the round trip above serves it)."""
    from fluxora.models.native import XGB_BASE_FILE, XGBoostPredictor

    fitted["xgboost"].save(tmp_path)
    assert not (tmp_path / XGB_BASE_FILE).exists()
    loaded = NativeForecaster.load(tmp_path)
    assert isinstance(loaded.predictor, XGBoostPredictor) and loaded.predictor.base is None


def test_xgboost_early_stopping_sizes_the_refit(cfg: FluxoraConfig, batches: tuple[OriginBatch, OriginBatch]) -> None:
    """The calibration fit stops on its held-out origins; the refit on every origin grows that
    many trees (at most n_estimators). Off (0): always n_estimators."""
    train, _ = batches
    stopped = make_forecaster("xgboost", cfg, H, "persistence").fit(train)
    assert stopped.rounds_ is not None and 1 <= stopped.rounds_ <= cfg.model.n_estimators
    assert stopped.booster_.num_boosted_rounds() == stopped.rounds_
    off = replace(cfg, model=replace(cfg.model, early_stopping_rounds=0))
    full = make_forecaster("xgboost", off, H, "persistence").fit(train)
    assert full.rounds_ is None and full.booster_.num_boosted_rounds() == cfg.model.n_estimators


def test_xgboost_base_setting_is_checked(cfg: FluxoraConfig) -> None:
    from fluxora.errors import ConfigError

    bad = replace(cfg, model=replace(cfg.model, xgb_base="lasso"))
    with pytest.raises(ConfigError, match=r"model\.xgb_base: 'lasso'"):
        make_forecaster("xgboost", bad, H, "persistence")


def test_ridge_fits_the_same_model_in_chunks_as_in_one_go(
    cfg: FluxoraConfig, batches: tuple[OriginBatch, OriginBatch]
) -> None:
    """The basis is reduced chunk by chunk (memory: one chunk, not ~210 float32 columns per design
    row); the chunk size must not change the model, and the model is the standardised ridge."""
    from scipy.linalg import solve

    from fluxora.models.forecasters import _scaled_targets, fit_ridge

    train, _ = batches
    contract = make_forecaster("ridge", cfg, H, "persistence").contract
    X, y = _scaled_targets(train, contract)
    y[::5] = np.nan  # unobserved targets are left out of the fit
    whole = fit_ridge(X, y, contract, 1.0, len(train), chunk=len(y))
    parts = fit_ridge(X, y, contract, 1.0, len(train), chunk=997)
    np.testing.assert_allclose(parts.coef, whole.coef, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(parts.residual_q, whole.residual_q, rtol=1e-7, atol=1e-9)
    keep = np.isfinite(y)
    basis = linear_basis(X[keep], contract.feature_names).astype("float64")
    z = (basis - basis.mean(axis=0)) / np.where(basis.std(axis=0) > 1e-9, basis.std(axis=0), 1.0)
    direct = solve(z.T @ z + np.eye(z.shape[1]), z.T @ (y[keep] - y[keep].mean()))
    np.testing.assert_allclose(whole.coef, direct, rtol=1e-6, atol=1e-8)
    assert np.isclose(whole.intercept, y[keep].mean())
