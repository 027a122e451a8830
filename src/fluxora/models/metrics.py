"""Point-forecast error metrics. Non-finite pairs are ignored; MAPE skips zero actuals."""

from __future__ import annotations

import numpy as np


def _pairs(actual: np.ndarray, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype="float64")
    f = np.asarray(forecast, dtype="float64")
    if a.shape != f.shape:
        raise ValueError(f"shape mismatch: actual {a.shape} vs forecast {f.shape}")
    keep = np.isfinite(a) & np.isfinite(f)
    return a[keep], f[keep]


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute error, in the load's unit."""
    a, f = _pairs(actual, forecast)
    return float(np.mean(np.abs(a - f))) if a.size else float("nan")


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute percentage error, in percent; zero actuals are left out."""
    a, f = _pairs(actual, forecast)
    nz = a != 0
    return float(np.mean(np.abs((a[nz] - f[nz]) / a[nz])) * 100) if nz.any() else float("nan")


def scores(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    return {"mae": mae(actual, forecast), "mape": mape(actual, forecast)}
