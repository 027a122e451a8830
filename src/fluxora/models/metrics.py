"""Forecast error metrics. Non-finite pairs are ignored; MAPE skips zero actuals.

Point: MAE, RMSE (load units), MAPE, sMAPE (percent), MASE (MAE over the in-sample seasonal
naive MAE of each series). Probabilistic: pinball loss averaged over quantile levels (load
units) and the coverage of the central interval between the lowest and highest level.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    a, f = _pairs(actual, forecast)
    return float(np.sqrt(np.mean((a - f) ** 2))) if a.size else float("nan")


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute percentage error, in percent; zero actuals are left out."""
    a, f = _pairs(actual, forecast)
    nz = a != 0
    return float(np.mean(np.abs((a[nz] - f[nz]) / a[nz])) * 100) if nz.any() else float("nan")


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent (0..200); pairs that are both zero are left out."""
    a, f = _pairs(actual, forecast)
    denom = np.abs(a) + np.abs(f)
    nz = denom != 0
    return float(np.mean(2 * np.abs(a[nz] - f[nz]) / denom[nz]) * 100) if nz.any() else float("nan")


def pinball(actual: np.ndarray, quantiles: Mapping[float, np.ndarray]) -> float:
    """Pinball (quantile) loss averaged over the levels, in load units."""
    losses = []
    for level, q in quantiles.items():
        a, f = _pairs(actual, q)
        if a.size:
            d = a - f
            losses.append(float(np.mean(np.maximum(level * d, (level - 1) * d))))
    return float(np.mean(losses)) if losses else float("nan")


def interval(quantiles: Mapping[float, np.ndarray]) -> tuple[float, float] | None:
    levels = sorted(quantiles)
    return (levels[0], levels[-1]) if len(levels) >= 2 else None


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals inside [lower, upper]."""
    a = np.asarray(actual, dtype="float64")
    keep = np.isfinite(a) & np.isfinite(lower) & np.isfinite(upper)
    if not keep.any():
        return float("nan")
    return float(np.mean((a[keep] >= lower[keep]) & (a[keep] <= upper[keep])))


def coverage_key(quantiles: Mapping[float, np.ndarray]) -> str | None:
    bounds = interval(quantiles)
    return None if bounds is None else f"coverage_{round((bounds[1] - bounds[0]) * 100)}"


def scores(
    actual: np.ndarray,
    forecast: np.ndarray,
    quantiles: Mapping[float, np.ndarray] | None = None,
    mase_scale: np.ndarray | None = None,
) -> dict[str, float]:
    """Every metric for aligned arrays. `mase_scale` is, per element, its series' in-sample
    seasonal naive MAE."""
    out = {
        "mae": mae(actual, forecast),
        "rmse": rmse(actual, forecast),
        "mape": mape(actual, forecast),
        "smape": smape(actual, forecast),
    }
    if mase_scale is not None:
        a, f = np.asarray(actual, dtype="float64"), np.asarray(forecast, dtype="float64")
        ok = np.isfinite(a) & np.isfinite(f) & np.isfinite(mase_scale) & (mase_scale > 0)
        out["mase"] = float(np.mean(np.abs(a[ok] - f[ok]) / mase_scale[ok])) if ok.any() else float("nan")
    if quantiles:
        out["pinball"] = pinball(actual, quantiles)
        bounds = interval(quantiles)
        key = coverage_key(quantiles)
        if bounds is not None and key is not None:
            out[key] = coverage(actual, quantiles[bounds[0]], quantiles[bounds[1]])
    return out
