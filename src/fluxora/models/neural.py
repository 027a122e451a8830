"""Training of the neural forecaster (Keras 3 on TensorFlow). Imported only where a neural model
is trained or its `.keras` file is loaded: TensorFlow costs seconds and hundreds of MB at import,
and the service serves the same network from plain arrays (`fluxora.models.native.NeuralPredictor`).

The network: the ridge model's interaction basis of the design rows (`linear_basis`),
standardised by a Keras `Normalization` layer; `neural_layers` ReLU layers; the median is a
linear function of [standardised input, last hidden layer] (a linear skip, so the network starts
where a linear model is and learns what is left); the other quantile levels sit at cumulative
softplus offsets below and above the median, mapped to levels by a fixed, non-trainable matrix,
so they never cross. Trained on the pinball loss of all levels at once, on loads scaled by each
origin's weekly mean (the design's scale), with Adam, early stopping on the latest held-out
origins and the best epoch's weights restored. Only standard Keras layers: the `.keras` file
loads with `safe_mode=True` and no custom objects.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fluxora.config import NeuralParams
from fluxora.models.native import NeuralPredictor

_log = logging.getLogger(__name__)

OFFSET_BIAS = -3.0  # initial offsets softplus(-3) ~ 0.05 of the weekly mean: narrow, then learnt


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no C++ log lines (start-up banners, tf.data notices)
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # plain kernels: no round-off notice, same sums as numpy
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _tensorflow(threads: int) -> Any:
    """TensorFlow, with deterministic ops and `threads` intra-op threads (where still settable)."""
    _quiet_tensorflow()
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    try:  # only possible before TensorFlow's runtime starts; a process keeps its first setting
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1 if threads else 0)
    except RuntimeError:
        pass
    tf.config.experimental.enable_op_determinism()
    return tf


def head_matrix(levels: tuple[float, ...]) -> np.ndarray:
    """(L, L): row 0 is the median (added to every level), row 1 + t the t-th offset: below the
    median the offsets accumulate downwards level by level, above it upwards."""
    k = levels.index(0.5)
    below, above = list(range(k - 1, -1, -1)), list(range(k + 1, len(levels)))
    m = np.zeros((len(levels), len(levels)), dtype="float32")
    m[0, :] = 1.0
    for t, _ in enumerate(below):
        m[1 + t, below[t:]] = -1.0
    for t, _ in enumerate(above):
        m[1 + len(below) + t, above[t:]] = 1.0
    return m


def pinball(levels: tuple[float, ...]) -> Callable[[Any, Any], Any]:
    """The mean pinball loss of all levels; y_true (batch, 1), y_pred (batch, L)."""
    import keras

    tau = np.asarray(levels, dtype="float32")[None, :]

    def loss(y_true: Any, y_pred: Any) -> Any:
        e = y_true - y_pred
        return keras.ops.mean(keras.ops.maximum(tau * e, (tau - 1.0) * e), axis=-1)

    return loss


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and variance (constant columns: variance 1), as the Normalization layer holds them."""
    mean = x.mean(axis=0, dtype="float64")
    std = x.std(axis=0, dtype="float64")
    return mean.astype("float32"), (np.where(std > 1e-6, std, 1.0) ** 2).astype("float32")


def build(width: int, levels: tuple[float, ...], mean: np.ndarray, var: np.ndarray, c: NeuralParams) -> Any:
    import keras

    x = keras.Input(shape=(width,), name="basis")
    z = keras.layers.Normalization(mean=mean, variance=var, name="standardise")(x)
    h = z
    for i in range(c.neural_layers):
        h = keras.layers.Dense(
            c.neural_units,
            activation="relu",
            kernel_regularizer=keras.regularizers.L2(c.neural_l2) if c.neural_l2 else None,
            name=f"hidden_{i}",
        )(h)
    median = keras.layers.Dense(1, name="median")(keras.layers.Concatenate(name="skip")([z, h]))
    offsets = keras.layers.Dense(
        len(levels) - 1,
        activation="softplus",
        bias_initializer=keras.initializers.Constant(OFFSET_BIAS),
        name="offsets",
    )(h)
    raw = keras.layers.Concatenate(name="median_offsets")([median, offsets])
    head = keras.layers.Dense(len(levels), use_bias=False, trainable=False, name="levels")
    out = head(raw)
    head.set_weights([head_matrix(levels)])
    return keras.Model(x, out, name="fluxora_neural")


@dataclass
class Trained:
    model: Any  # the keras.Model
    predictor: NeuralPredictor
    history: dict[str, list[float]]  # per epoch: loss, val_loss (when validated), lr
    seconds: float


def predictor_of(model: Any, levels: int) -> NeuralPredictor:
    """The numpy predictor holding the Keras model's weights."""
    norm = model.get_layer("standardise")
    import keras

    mean, var = (
        np.asarray(keras.ops.convert_to_numpy(v), dtype="float32").reshape(-1) for v in (norm.mean, norm.variance)
    )
    hidden = []
    i = 0
    while any(layer.name == f"hidden_{i}" for layer in model.layers):
        w, b = model.get_layer(f"hidden_{i}").get_weights()
        hidden.append((np.asarray(w), np.asarray(b)))
        i += 1
    med_w, med_b = model.get_layer("median").get_weights()
    off_w, off_b = model.get_layer("offsets").get_weights()
    (head,) = model.get_layer("levels").get_weights()
    assert head.shape == (levels, levels)
    return NeuralPredictor(mean, var, hidden, (med_w, med_b), (off_w, off_b), np.asarray(head))


def train(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    levels: tuple[float, ...],
    c: NeuralParams,
    linear: tuple[np.ndarray, float] | None = None,
) -> Trained:
    """Fit the network on inputs `x` (rows, P) and scaled targets `y` (rows,); early stopping on
    (`x_val`, `y_val`) when given, else a fixed `neural_epochs`. `linear` (coefficients on the
    standardised inputs, intercept; see `standardisation`) starts the median's skip there: the
    network begins as that linear model and learns the rest."""
    tf = _tensorflow(c.neural_threads)
    import keras

    keras.utils.set_random_seed(c.neural_seed)
    mean, var = standardisation(x)
    model = build(x.shape[1], levels, mean, var, c)
    if linear is not None:
        median = model.get_layer("median")
        kernel, _ = median.get_weights()
        kernel[:] = 0.0
        kernel[: x.shape[1], 0] = linear[0]
        median.set_weights([kernel, np.array([linear[1]], dtype="float32")])
    model.compile(optimizer=keras.optimizers.Adam(c.neural_learning_rate), loss=pinball(levels))
    validated = x_val is not None and y_val is not None and len(y_val) > 0
    monitor = "val_loss" if validated else "loss"
    history: dict[str, list[float]] = {}
    started = time.perf_counter()

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = dict(logs or {})
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            for key, value in logs.items():
                history.setdefault(key, []).append(float(value))
            val = f" val_loss {logs['val_loss']:.5f}" if "val_loss" in logs else ""
            _log.info(
                "neural: epoch %d/%d loss %.5f%s (%.0f s)",
                epoch + 1,
                c.neural_epochs,
                logs.get("loss", float("nan")),
                val,
                time.perf_counter() - started,
            )

    callbacks = [
        Progress(),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=max(1, c.neural_patience // 3)),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=c.neural_patience, restore_best_weights=True),
    ]
    start_loss = float(model.evaluate(x_val, y_val[:, None], verbose=0)) if validated else float("inf")  # type: ignore[index]
    start_weights = model.get_weights()
    with tf.device("/CPU:0"):
        model.fit(
            x,
            y.astype("float32")[:, None],
            validation_data=(x_val, y_val.astype("float32")[:, None]) if validated else None,  # type: ignore[union-attr]
            epochs=c.neural_epochs,
            batch_size=c.neural_batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=0,
        )
    if validated and min(history.get("val_loss", [np.inf])) >= start_loss:
        _log.info("neural: no epoch beat the starting point (validation loss %.5f); keeping it", start_loss)
        model.set_weights(start_weights)
    seconds = time.perf_counter() - started
    return Trained(model, predictor_of(model, len(levels)), history, seconds)


def save_keras(model: Any, path: Path) -> None:
    model.save(str(path))


def load_keras(path: Path) -> Any:
    """A saved `.keras` file, in safe mode (no code runs on load), without its training setup."""
    _quiet_tensorflow()
    import keras

    return keras.saving.load_model(str(path), safe_mode=True, compile=False)
