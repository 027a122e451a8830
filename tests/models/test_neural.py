"""The neural forecaster (Keras on TensorFlow): served by numpy exactly as Keras predicts, saved
without pickle, seeded, quantiles that never cross, registered and served without TensorFlow.

Tiny networks and few epochs (TINY_OVERRIDES): TensorFlow on a shared 2-core machine is slow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import TINY_OVERRIDES, train_test_batches
from fluxora.config import FluxoraConfig, compose
from fluxora.errors import ConfigError
from fluxora.features.names import LOAD_HISTORY, TEMP_HISTORY
from fluxora.models import forecasters
from fluxora.models.forecasters import make_forecaster
from fluxora.models.native import (
    KERAS_FILE,
    MODEL_FILE,
    NEURAL_WEIGHTS_FILE,
    TRAINING_CURVE_FILE,
    NativeForecaster,
    NeuralPredictor,
    design_for,
)
from fluxora.models.panel import OriginBatch
from fluxora.paths import Home

H = 24


@pytest.fixture(scope="module")
def cfg() -> FluxoraConfig:
    return compose(TINY_OVERRIDES)


@pytest.fixture(scope="module")
def batches(cfg: FluxoraConfig) -> tuple[OriginBatch, OriginBatch]:
    return train_test_batches(cfg, H)


@pytest.fixture(scope="module")
def saved(cfg: FluxoraConfig, batches: tuple[OriginBatch, OriginBatch], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A calibrated neural model, fitted and saved."""
    model = make_forecaster("neural", cfg, H, "persistence").fit(batches[0])
    return model, model.save(tmp_path_factory.mktemp("neural"))


def test_numpy_forward_pass_equals_keras_and_is_what_is_served(saved, batches) -> None:  # type: ignore[no-untyped-def]
    from fluxora.models import neural

    model, directory = saved
    _, test = batches
    assert model.calibration_ is not None  # conformal calibration like the other families
    keras_model = neural.load_keras(directory / KERAS_FILE)  # safe mode: no code runs on load
    served = NativeForecaster.load(directory)
    assert isinstance(served.predictor, NeuralPredictor)
    c = served.contract
    state = {LOAD_HISTORY: test.load_history, TEMP_HISTORY: test.temp_history}  # what serving has
    design = design_for(state, test.origins, H, c)
    x = served.predictor.inputs(design.X, c.feature_names)
    by_keras = np.asarray(keras_model.predict(x, verbose=0))
    np.testing.assert_allclose(served.predictor.forward(x), by_keras, rtol=1e-5, atol=1e-6)
    # the served point forecast is Keras' median times each origin's weekly mean load
    forecast = served.forecast(state, test.origins, H, c.quantiles)
    median = by_keras[:, c.quantiles.index(0.5)] * design.scale
    np.testing.assert_allclose(forecast.point, median.reshape(len(test), H), rtol=1e-5)
    np.testing.assert_allclose(forecast.point, model.predict(test).point, rtol=1e-6)
    q = np.stack([forecast.quantiles[lv] for lv in c.quantiles])
    assert np.isfinite(q).all() and (np.diff(q, axis=0) >= 0).all()
    assert (q[-1] - q[0] > 0).mean() > 0.9
    # nothing pickled: plain JSON and plain arrays next to the Keras file
    json.loads((directory / MODEL_FILE).read_text())
    assert set(json.loads((directory / TRAINING_CURVE_FILE).read_text())) >= {"loss", "val_loss"}
    with np.load(directory / NEURAL_WEIGHTS_FILE, allow_pickle=False) as npz:
        assert all(npz[k].dtype == np.float32 for k in npz.files)


def test_network_levels_never_cross() -> None:
    from fluxora.models.neural import head_matrix

    levels = (0.05, 0.1, 0.5, 0.9, 0.95)
    raw = np.random.default_rng(0).normal(size=(500, len(levels))) * 5
    raw[:, 1:] = np.logaddexp(0.0, raw[:, 1:])  # the offsets are softplus: positive
    out = raw @ head_matrix(levels)
    assert (np.diff(out, axis=1) >= 0).all()
    np.testing.assert_array_equal(out[:, 2], raw[:, 0])  # the median is the median output


def test_a_rerun_gives_the_same_model(cfg: FluxoraConfig, batches: tuple[OriginBatch, OriginBatch]) -> None:
    uncalibrated = compose([*TINY_OVERRIDES, "model.calibration_days=0", "model.neural_epochs=2"])
    a, b = (make_forecaster("neural", uncalibrated, H, "persistence").fit(batches[0]) for _ in range(2))
    assert isinstance(a.predictor_, NeuralPredictor) and isinstance(b.predictor_, NeuralPredictor)
    for key, value in a.predictor_.arrays().items():
        np.testing.assert_array_equal(value, b.predictor_.arrays()[key], err_msg=key)


def test_serving_a_neural_model_imports_no_tensorflow(saved, batches) -> None:  # type: ignore[no-untyped-def]
    _, directory = saved
    _, test = batches
    np.savez(directory.parent / "state.npz", load=test.load_history, temp=test.temp_history, origins=test.origins)
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        from fluxora.models.native import NativeForecaster
        s = np.load({str(directory.parent / "state.npz")!r})
        f = NativeForecaster.load(__import__("pathlib").Path({str(directory)!r}))
        out = f.forecast({{"load_history": s["load"], "temp_history": s["temp"]}}, s["origins"], 24, (0.1, 0.9))
        print(json.dumps({{"finite": bool(np.isfinite(out.point).all()), "modules": sorted(sys.modules)}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["finite"]
    assert not {"tensorflow", "keras", "fluxora.models.neural"} & set(result["modules"])


def test_neural_needs_tensorflow_installed(cfg: FluxoraConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without its library the neural model leaves `model=auto` and the backtest, and asking
    for it by name is a one-line configuration error."""
    monkeypatch.setitem(forecasters.NEEDS, "neural", "fluxora_no_such_module")
    assert forecasters.installed(["ridge", "neural", "xgboost"]) == ["ridge", "xgboost"]
    with pytest.raises(ConfigError, match="needs fluxora_no_such_module"):
        make_forecaster("neural", cfg, H, "persistence")


@pytest.mark.integration
def test_train_registers_a_neural_model_with_its_curves_and_serves_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The training step with `model=neural`: shows its epochs, is backtested against seasonal
    naive, registered with its training curves in MLflow, served by the service from the registry."""
    from fastapi.testclient import TestClient
    from serving_support import make_key, settings_for

    from fluxora import registry, steps
    from fluxora.api.app import create_app
    from fluxora.runtime import prepare

    home = prepare(Home(tmp_path_factory.mktemp("neural-home")))
    cfg = compose([*TINY_OVERRIDES, "model=neural", "backtest.plots=false", "model.calibration_days=0"])
    for step in (steps.ingest, steps.validate, steps.features):
        step(cfg, home)
    lines: list[str] = []
    outputs = steps.train(cfg, home, progress=lines.append).outputs()
    assert any(line.startswith("neural: epoch 1/") and "loss" in line for line in lines)  # shown as it trains
    assert set(dict(outputs["leaderboard"])) == {"neural", "seasonal_naive_daily", "seasonal_naive_weekly"}
    client = registry.configure(home)
    version = client.get_model_version(cfg.train.registered_model_name, outputs["model"]["version"])
    assert version.tags["fluxora.model"] == "neural"
    curve = client.get_metric_history(version.run_id, "neural.loss")
    assert [m.step for m in curve] == list(range(len(curve))) and len(curve) >= 1
    if not outputs["model"]["champion"]:  # tiny data and four epochs: the gate may keep naive ahead
        registry.promote(home, cfg.train.registered_model_name, str(version.version), "neural test")
    app = create_app(settings_for(cfg, home))
    with TestClient(app) as c:
        r = c.get("/v1/forecast", params={"series_id": "series_000"}, headers={"X-API-Key": make_key(app)})
    assert r.status_code == 200, r.text
