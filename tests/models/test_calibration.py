"""Conformal calibration of the quantiles: the table, the held-out split, coverage on a series
with known noise, and that every serving path (native files, MLflow pyfunc) applies it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from conftest import TINY_OVERRIDES
from fluxora.config import FluxoraConfig, compose
from fluxora.data.resolution import Resolution
from fluxora.features.names import LOAD_HISTORY, TEMP_HISTORY
from fluxora.models.calibration import MIN_SCORES, conformal_table, holdout_split
from fluxora.models.forecasters import Forecaster, make_forecaster
from fluxora.models.native import CALIBRATION_ATTR, MODEL_FILE, XGB_QUANTILE_FILE, NativeForecaster
from fluxora.models.panel import OriginBatch, Panel

H = 24
LEVELS = (0.1, 0.5, 0.9)
SIGMA = 0.05  # relative noise of the known-noise series
LOAD_LEVELS = tuple(40.0 * 1.6 ** np.arange(12))  # 40 .. 7,000: series of every size share one table


# --- the table and the split ----------------------------------------------------------------------


def test_conformal_table_recovers_known_quantiles() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    scale = rng.uniform(10.0, 1000.0, n)
    y = scale[:, None] * rng.normal(0.0, 1.0, (n, 3)) * np.array([1.0, 2.0, 3.0])  # spread grows with the step
    raw = np.zeros((3, n, 3))  # a model that claims no spread at all
    table = conformal_table(y, raw, LEVELS, scale)
    z = 1.2816  # standard normal 0.9 quantile
    np.testing.assert_allclose(table[2], z * np.array([1.0, 2.0, 3.0]), rtol=0.06)
    np.testing.assert_allclose(table[0], -table[2])  # a symmetric pair moves outwards together
    np.testing.assert_array_equal(table[1], 0.0)  # the median is the model's own
    fresh = scale[:, None] * rng.normal(0.0, 1.0, (n, 3)) * np.array([1.0, 2.0, 3.0])
    lower, upper = table[0] * scale[:, None], table[2] * scale[:, None]
    assert 0.78 < ((fresh >= lower) & (fresh <= upper)).mean() < 0.82


def test_conformal_table_one_sided_levels_and_small_samples() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(0.0, 1.0, (5000, 2))
    y[: 5000 - MIN_SCORES + 1, 1] = np.nan  # too few scores at the second step: no correction
    table = conformal_table(y, np.zeros((2, 5000, 2)), (0.5, 0.8), np.ones(5000))
    assert table[1, 0] == pytest.approx(0.8416, abs=0.06)  # no 0.2 partner: P(y <= q + c) = 0.8
    assert table[0, 0] == 0.0 and table[1, 1] == 0.0


def test_holdout_split_keeps_time_order_and_a_horizon_gap() -> None:
    origins = np.datetime64("2024-01-01T00", "ns") + np.arange(0, 90 * 24, 3) * np.timedelta64(1, "h")
    fit, held = holdout_split(origins, 24, 14.0)  # type: ignore[misc]
    assert origins[fit].max() + np.timedelta64(24, "h") <= origins[held].min()  # fitted targets end before
    assert origins[held].max() == origins.max()
    assert (origins[held].max() - origins[held].min()) < np.timedelta64(14, "D")
    _, capped = holdout_split(origins, 24, 365.0)  # type: ignore[misc]
    assert len(capped) <= len(origins) / 3 + 1  # never more than a third of the span
    assert holdout_split(origins, 24, 0.0) is None


def test_holdout_gap_is_the_horizon_at_the_models_step() -> None:
    """48 steps at 30 minutes are 24 h: the fit part ends a day (not two) before the held-out one."""
    step = np.timedelta64(30, "m")
    origins = np.datetime64("2024-01-01T00", "ns") + np.arange(0, 60 * 48) * step
    fit, held = holdout_split(origins, 48, 14.0, Resolution.parse("30min"))  # type: ignore[misc]
    assert origins[held].min() - origins[fit].max() == np.timedelta64(24, "h") + step
    hourly_fit, _ = holdout_split(origins, 48, 14.0)  # type: ignore[misc]
    assert origins[held].min() - origins[hourly_fit].max() == np.timedelta64(48, "h") + step  # 48 hourly steps


# --- coverage on a series with known noise ----------------------------------------------------------


@pytest.fixture(scope="module")
def cfg() -> FluxoraConfig:
    return compose(TINY_OVERRIDES)


@pytest.fixture(scope="module")
def known_noise() -> tuple[OriginBatch, OriginBatch]:
    """Twelve series (levels 40 .. 7,000) with a daily and weekly profile and AR(1) relative
    noise (hourly persistence 0.9, standard deviation SIGMA); train on the first 61 days, test
    every 2 h over the last 14."""
    rng = np.random.default_rng(0)
    stamps = pd.date_range("2024-03-01", periods=75 * 24, freq="h", tz="UTC")
    hour, weekend = stamps.hour.to_numpy(), stamps.dayofweek.to_numpy() >= 5
    frames = []
    for i, level in enumerate(LOAD_LEVELS):
        noise = lfilter([1.0], [1.0, -0.9], rng.normal(0.0, SIGMA * np.sqrt(1 - 0.81), len(stamps)))
        shape = 1.0 + 0.3 * np.sin(2 * np.pi * (hour - 9) / 24) - 0.1 * weekend
        temp = 12.0 + 4.0 * np.sin(2 * np.pi * (hour - 9) / 24) + rng.normal(0.0, 1.0, len(stamps))
        load = level * shape * (1 + noise)
        frames.append(pd.DataFrame({"series_id": f"s{i:02d}", "timestamp": stamps, "load": load, "temperature": temp}))
    panel = Panel.from_frame(pd.concat(frames, ignore_index=True))
    cut = min(s.end for s in panel.series.values()) - np.timedelta64(15 * 24, "h")
    seen = panel.until(cut)
    train = seen.batch(seen.training_origins(H, 6, 168, 24), H, 168, 24)
    test_origins = cut + np.arange(0, 14 * 24, 2) * np.timedelta64(1, "h")
    return train, panel.batch({sid: test_origins for sid in panel.series}, H, 168, 24)


def _fit(cfg: FluxoraConfig, name: str, train: OriginBatch, days: float) -> Forecaster:
    cfg = replace(cfg, model=replace(cfg.model, calibration_days=days))
    return make_forecaster(name, cfg, H, "persistence").fit(train)


def _coverage(model: Forecaster, test: OriginBatch) -> np.ndarray:
    fc = model.predict(test)
    return (test.y >= fc.quantiles[0.1]) & (test.y <= fc.quantiles[0.9])


@pytest.fixture(scope="module")
def xgb_models(cfg: FluxoraConfig, known_noise: tuple[OriginBatch, OriginBatch]) -> dict[str, Forecaster]:
    """The quantile booster with small, deep leaves: its in-sample quantiles fit the training
    noise and are too narrow out of sample, which calibration has to undo. Pinned to the plain
    booster (no ridge base): the test is about the spread model, not how good the point is."""
    train, _ = known_noise
    model = replace(cfg.model, quantile_min_child_weight=1.0, quantile_max_depth=8, xgb_base="none")
    cfg = replace(cfg, model=model)
    return {"raw": _fit(cfg, "xgboost", train, 0.0), "calibrated": _fit(cfg, "xgboost", train, 28.0)}


def test_calibrated_xgboost_interval_covers_80_percent_where_raw_undercovers(
    xgb_models: dict[str, Forecaster], known_noise: tuple[OriginBatch, OriginBatch]
) -> None:
    _, test = known_noise
    raw, calibrated = _coverage(xgb_models["raw"], test), _coverage(xgb_models["calibrated"], test)
    assert xgb_models["raw"].calibration_ is None
    assert raw.mean() < 0.75, "the uncalibrated quantile booster should under-cover (in-sample quantiles)"
    assert 0.75 <= calibrated.mean() <= 0.85
    small, large = test.series < "s06", test.series >= "s06"  # one table in relative units serves every size
    assert 0.72 <= calibrated[small].mean() <= 0.88 and 0.72 <= calibrated[large].mean() <= 0.88
    # calibrated, not merely wide: about the width of the true 80 % interval (2 x 1.28 sigma)
    fc = xgb_models["calibrated"].predict(test)
    width = np.nanmean((fc.quantiles[0.9] - fc.quantiles[0.1]) / fc.point)
    assert 2 * 1.2816 * SIGMA * 0.9 < width < 2 * 1.2816 * SIGMA * 1.6


def test_calibrated_ridge_interval_covers_80_percent(
    cfg: FluxoraConfig, known_noise: tuple[OriginBatch, OriginBatch]
) -> None:
    train, test = known_noise
    model = _fit(cfg, "ridge", train, 28.0)
    assert model.calibration_ is not None and model.calibration_.shape == (len(LEVELS), H)
    assert 0.75 <= _coverage(model, test).mean() <= 0.85


# --- the served quantiles include the calibration ------------------------------------------------


def _state(batch: OriginBatch) -> dict[str, np.ndarray]:
    return {LOAD_HISTORY: batch.load_history, TEMP_HISTORY: batch.temp_history}


def _pyfunc_quantiles(model_dir: Path, batch: OriginBatch) -> dict[float, np.ndarray]:
    from fluxora.models.pyfunc_model import LoadForecasterModel

    pyfunc = LoadForecasterModel()
    pyfunc.load_context(SimpleNamespace(artifacts={"model_dir": str(model_dir)}))
    frame = pd.DataFrame(
        {
            "origin": pd.DatetimeIndex(batch.origins).tz_localize("UTC"),
            LOAD_HISTORY: list(batch.load_history),
            TEMP_HISTORY: list(batch.temp_history),
        }
    )
    out = pyfunc.predict(None, frame)
    return {level: out[f"q{level:g}"].to_numpy().reshape(len(batch), H) for level in LEVELS}


def test_native_and_pyfunc_serve_the_calibrated_quantiles(
    xgb_models: dict[str, Forecaster], known_noise: tuple[OriginBatch, OriginBatch], tmp_path: Path
) -> None:
    _, test = known_noise
    model = xgb_models["calibrated"]
    fitted = model.predict(test)
    model.save(tmp_path)
    assert json.loads((tmp_path / XGB_QUANTILE_FILE).read_text())["learner"]["attributes"][CALIBRATION_ATTR]
    native = NativeForecaster.load(tmp_path).forecast(_state(test), test.origins, H, LEVELS)
    pyfunc = _pyfunc_quantiles(tmp_path, test)
    for level in LEVELS:
        np.testing.assert_allclose(native.quantiles[level], fitted.quantiles[level], rtol=1e-6)
        np.testing.assert_allclose(pyfunc[level], fitted.quantiles[level], rtol=1e-6)
    # the table really is what widens them: without it the served interval is the raw one
    model.calibration_ = None
    model.save(tmp_path)
    bare = NativeForecaster.load(tmp_path).forecast(_state(test), test.origins, H, LEVELS)
    assert ((native.quantiles[0.9] - native.quantiles[0.1]) > (bare.quantiles[0.9] - bare.quantiles[0.1])).mean() > 0.9


def test_json_models_store_the_table_and_load_without_one(
    cfg: FluxoraConfig, known_noise: tuple[OriginBatch, OriginBatch], tmp_path: Path
) -> None:
    train, test = known_noise
    model = _fit(cfg, "ridge", train, 28.0)
    model.save(tmp_path)
    stored = json.loads((tmp_path / MODEL_FILE).read_text())
    np.testing.assert_allclose(stored["calibration"], model.calibration_)
    served = NativeForecaster.load(tmp_path).forecast(_state(test), test.origins, H, LEVELS)
    np.testing.assert_allclose(_pyfunc_quantiles(tmp_path, test)[0.9], served.quantiles[0.9], rtol=1e-6)
    # a model saved before calibration existed has no key: it serves its raw quantiles
    del stored["calibration"]
    (tmp_path / MODEL_FILE).write_text(json.dumps(stored))
    old = NativeForecaster.load(tmp_path).forecast(_state(test), test.origins, H, LEVELS)
    np.testing.assert_allclose(old.point, served.point)
    assert not np.allclose(old.quantiles[0.9], served.quantiles[0.9])
    assert (np.diff(np.stack([old.quantiles[lv] for lv in LEVELS]), axis=0) >= 0).all()


def test_registered_champion_pyfunc_serves_the_calibrated_quantiles(champion_dir: Path) -> None:
    """The model the registry holds (trained by the pipeline) carries its table, and MLflow's
    own pyfunc loader serves the same quantiles as the service's native loader."""
    import mlflow

    native = NativeForecaster.load(champion_dir)
    assert native.predictor.calibration is not None
    root = next(p for p in (champion_dir, *champion_dir.parents) if (p / "MLmodel").is_file())
    rng = np.random.default_rng(3)
    n, c = 3, native.contract
    origins = pd.DatetimeIndex(["2024-02-10 05:00", "2024-02-10 06:00", "2024-02-11 23:00"]).to_numpy()
    load = 100.0 + 30.0 * rng.random((n, c.load_history_hours))
    temp = 5.0 + 3.0 * rng.random((n, c.temp_history_hours))
    expected = native.forecast({LOAD_HISTORY: load, TEMP_HISTORY: temp}, origins, c.horizon, c.quantiles)
    frame = pd.DataFrame(
        {"origin": pd.DatetimeIndex(origins).tz_localize("UTC"), LOAD_HISTORY: list(load), TEMP_HISTORY: list(temp)}
    )
    served = mlflow.pyfunc.load_model(str(root)).predict(frame)
    for level in c.quantiles:
        np.testing.assert_allclose(
            served[f"q{level:g}"].to_numpy().reshape(n, c.horizon), expected.quantiles[level], rtol=1e-6
        )
