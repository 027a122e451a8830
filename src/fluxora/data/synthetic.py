"""A deterministic synthetic sample of hourly electric load with temperature.

Each series has its own level, climate and sensitivities. Load follows a daily profile
(morning and evening peaks, flatter at weekends), a weekly cycle, and a non-linear
temperature response (heating below ~15 C, cooling above ~22 C); temperature has an
annual and a daily cycle plus persistent weather anomalies. Same seed, same data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fluxora.config import DataConfig
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP


def generate(cfg: DataConfig) -> pd.DataFrame:
    """Canonical long-format frame: series_id, timestamp (UTC), load, temperature."""
    if cfg.n_series < 1 or cfg.days < 1:
        raise ValueError("data.n_series and data.days must be at least 1")
    index = pd.date_range(pd.Timestamp(cfg.start, tz="UTC"), periods=cfg.days * 24, freq="h")
    rng = np.random.default_rng(cfg.seed)
    frames = [_one_series(f"series_{i:03d}", index, rng, cfg.noise) for i in range(cfg.n_series)]
    return pd.concat(frames, ignore_index=True)


def _ar1(rng: np.random.Generator, n: int, phi: float, scale: float) -> np.ndarray:
    shocks = rng.normal(0.0, scale * np.sqrt(1 - phi**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, scale)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


def _one_series(series_id: str, index: pd.DatetimeIndex, rng: np.random.Generator, noise: float) -> pd.DataFrame:
    n = len(index)
    hour = index.hour.to_numpy()
    dow = index.dayofweek.to_numpy()
    doy = index.dayofyear.to_numpy()

    mean_temp = rng.uniform(8.0, 16.0)
    annual_amp = rng.uniform(7.0, 12.0)
    temperature = (
        mean_temp
        - annual_amp * np.cos(2 * np.pi * (doy - 15) / 365.25)
        - 4.0 * np.cos(2 * np.pi * (hour - 3) / 24)
        + _ar1(rng, n, phi=0.995, scale=3.0)  # multi-day weather anomalies
    )

    level = rng.uniform(50.0, 500.0)
    weekend = dow >= 5
    morning = np.exp(-0.5 * ((hour - 8) / 2.0) ** 2)
    evening = np.exp(-0.5 * ((hour - 19) / 2.5) ** 2)
    night = -0.35 * np.exp(-0.5 * ((hour - 3) / 3.0) ** 2)
    daily = np.where(weekend, 0.15 * morning + 0.25 * evening, 0.30 * morning + 0.30 * evening) + night
    weekly = np.where(weekend, -0.12, 0.0) + np.where(dow == 0, -0.02, 0.0)
    heating = rng.uniform(0.015, 0.03) * np.maximum(15.0 - temperature, 0.0)
    cooling = rng.uniform(0.01, 0.04) * np.maximum(temperature - 22.0, 0.0) ** 1.3
    shape = 1.0 + daily + weekly + heating + cooling
    load = level * shape * (1.0 + _ar1(rng, n, phi=0.9, scale=noise))

    return pd.DataFrame(
        {
            SERIES_ID: series_id,
            TIMESTAMP: index,
            LOAD: load.astype("float64"),
            TEMPERATURE: temperature.astype("float64"),
        }
    )
