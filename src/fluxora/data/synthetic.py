"""A deterministic synthetic sample of electric load with temperature, for 1 to 10,000 series.

Each series has its own level, climate and sensitivities. Load follows a daily profile
(morning and evening peaks, flatter at weekends and on public holidays), a weekly cycle, and a
non-linear temperature response (heating below ~15 C, cooling above ~22 C); temperature has an
annual and a daily cycle plus persistent weather anomalies. On request the generator adds what
real feeds have: missing stretches, outliers (spikes) and level shifts (a new customer, a lost
feeder). Same seed, same data; series are made in fixed-size chunks with their own seeded
generator, so memory is bounded by the chunk and `generate_chunks` can stream any size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from fluxora.config import DataConfig
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP

MAX_SERIES = 10_000
CHUNK = 128  # series per chunk; part of the seeding, so changing it changes the data


def generate(cfg: DataConfig) -> pd.DataFrame:
    """Canonical long-format frame: series_id, timestamp (UTC), load, temperature."""
    return pd.concat(list(generate_chunks(cfg)), ignore_index=True)


def generate_chunks(cfg: DataConfig) -> Iterator[pd.DataFrame]:
    """The same data as `generate`, `CHUNK` series at a time."""
    if cfg.n_series < 1 or cfg.days < 1:
        raise ValueError("data.n_series and data.days must be at least 1")
    if cfg.n_series > MAX_SERIES:
        raise ValueError(f"data.n_series must be at most {MAX_SERIES}, got {cfg.n_series}")
    step = pd.Timedelta(pd.tseries.frequencies.to_offset("h" if cfg.resolution == "auto" else cfg.resolution))  # type: ignore[arg-type]
    per_day = pd.Timedelta(days=1) // step
    index = pd.date_range(pd.Timestamp(cfg.start, tz="UTC"), periods=cfg.days * per_day, freq=step)
    calendar = _Calendar(index, cfg.holidays_country)
    width = len(str(max(cfg.n_series - 1, 999)))
    for first in range(0, cfg.n_series, CHUNK):
        # the first chunk uses the plain seed, so small samples match the skeleton's generator
        rng = np.random.default_rng(cfg.seed if first == 0 else [cfg.seed, first // CHUNK])
        k = min(CHUNK, cfg.n_series - first)
        ids = [f"series_{i:0{width}d}" for i in range(first, first + k)]
        temp, load = _chunk(rng, k, calendar, step / pd.Timedelta(hours=1), cfg.noise)
        keep = np.ones_like(load, dtype=bool)
        _anomalies(rng, load, keep, cfg)
        stamps = np.tile(index.asi8, k)[keep.ravel()].view("datetime64[ns]")
        yield pd.DataFrame(
            {
                SERIES_ID: np.repeat(np.array(ids, dtype=object), keep.sum(axis=1)),
                TIMESTAMP: pd.DatetimeIndex(stamps).tz_localize("UTC"),
                LOAD: load[keep],
                TEMPERATURE: temp[keep],
            }
        ).astype({LOAD: "float64", TEMPERATURE: "float64"})


class _Calendar:
    """Hour of day, day of week, day of year and public holidays for the time index."""

    def __init__(self, index: pd.DatetimeIndex, country: str) -> None:
        self.index = index
        self.hour = (index.hour + index.minute / 60).to_numpy(dtype="float64")
        self.doy = index.dayofyear.to_numpy()
        dow = index.dayofweek.to_numpy()
        self.holiday = _holidays(index, country)
        self.rest_day = (dow >= 5) | self.holiday  # holidays look like Sundays
        self.monday = (dow == 0) & ~self.holiday


def _holidays(index: pd.DatetimeIndex, country: str) -> np.ndarray:
    if not country:
        return np.zeros(len(index), dtype=bool)
    import holidays

    years = range(index.min().year, index.max().year + 1)
    days = holidays.country_holidays(country, years=years)
    return pd.Series(index.date).isin(set(days)).to_numpy()


def _ar1(rng: np.random.Generator, n: int, phi: float, scale: float) -> np.ndarray:
    """A stationary AR(1) path with standard deviation `scale` (lfilter runs the recursion in C)."""
    shocks = rng.normal(0.0, scale * np.sqrt(1 - phi**2), n)
    shocks[0] = rng.normal(0.0, scale)
    return np.asarray(lfilter([1.0], [1.0, -phi], shocks))


def _chunk(
    rng: np.random.Generator, k: int, cal: _Calendar, hours_per_step: float, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Temperature and load, one row per series; draws per series in a fixed order (same seed, same data)."""
    n = len(cal.index)
    hour, doy, rest = cal.hour, cal.doy, cal.rest_day
    morning = np.exp(-0.5 * ((hour - 8) / 2.0) ** 2)
    evening = np.exp(-0.5 * ((hour - 19) / 2.5) ** 2)
    night = -0.35 * np.exp(-0.5 * ((hour - 3) / 3.0) ** 2)
    daily = np.where(rest, 0.15 * morning + 0.25 * evening, 0.30 * morning + 0.30 * evening) + night
    weekly = np.where(rest, -0.12, 0.0) + np.where(cal.monday, -0.02, 0.0)
    seasonal = np.cos(2 * np.pi * (doy - 15) / 365.25)
    diurnal = 4.0 * np.cos(2 * np.pi * (hour - 3) / 24)
    temps, loads = np.empty((k, n)), np.empty((k, n))
    for i in range(k):
        mean_temp, annual_amp = rng.uniform(8.0, 16.0), rng.uniform(7.0, 12.0)
        anomaly = _ar1(rng, n, phi=0.995**hours_per_step, scale=3.0)  # multi-day weather anomalies
        temperature = mean_temp - annual_amp * seasonal - diurnal + anomaly
        level = rng.uniform(50.0, 500.0)
        heating = rng.uniform(0.015, 0.03) * np.maximum(15.0 - temperature, 0.0)
        cooling = rng.uniform(0.01, 0.04) * np.maximum(temperature - 22.0, 0.0) ** 1.3
        shape = 1.0 + daily + weekly + heating + cooling
        loads[i] = level * shape * (1.0 + _ar1(rng, n, phi=0.9**hours_per_step, scale=noise))
        temps[i] = temperature
    return temps, loads


def _anomalies(rng: np.random.Generator, load: np.ndarray, keep: np.ndarray, cfg: DataConfig) -> None:
    """Level shifts, outliers and missing stretches, in place; none unless asked for."""
    k, n = load.shape
    for _ in range(cfg.level_shifts):
        at = rng.integers(n // 10, n, k)
        factor = 1.0 + rng.choice([-1.0, 1.0], k) * rng.uniform(0.1, 0.3, k)
        load *= np.where(np.arange(n)[None, :] >= at[:, None], factor[:, None], 1.0)
    for _ in range(cfg.outliers):
        at = rng.integers(0, n, k)
        load[np.arange(k), at] *= rng.choice([0.0, 4.0], k)  # dropped reading or a 4x spike
    for _ in range(cfg.missing_stretches):
        start = np.asarray(rng.integers(0, n, k))
        end = start + np.asarray(rng.integers(2, 48, k))
        span = np.arange(n)[None, :]
        keep &= ~((span >= start[:, None]) & (span < end[:, None]))


def issued_forecasts(
    data: pd.DataFrame,
    hours: int,
    every_hours: int,
    error_c: float,
    seed: int,
    issued_until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Temperature forecasts as a weather service would have issued them for `data` (long:
    series_id, issued_at, target_time, temperature): a run every `every_hours` hours (on the
    UTC clock) for the `hours` after it, equal to the observed temperature plus an error that
    wanders along the lead time like a real forecast's (a random walk, seeded per series and run),
    with standard deviation `error_c` at 24 h and growing with the square root of the lead.
    Runs are issued up to `issued_until` (default: the end of `data`); `data` may run past it,
    as the weather the forecasts of the last runs predict."""
    if every_hours < 1 or hours < 1:
        raise ValueError("synthetic weather forecasts need hours >= 1 and a run at least every hour")
    frames = []
    steps = np.arange(1, hours + 1)
    step_sd = error_c / np.sqrt(24.0)  # per-hour increment: the walk's std at 24 h is error_c
    for k, (sid, group) in enumerate(data.groupby("series_id", sort=True)):
        temp = group["temperature"].to_numpy(dtype="float64")
        if not np.isfinite(temp).any():
            continue  # a load-only series: no location, no forecast
        stamps = pd.to_datetime(group["timestamp"], utc=True).dt.tz_convert(None).to_numpy(dtype="datetime64[h]")
        start = stamps[0]
        issue = np.flatnonzero(stamps.astype("int64") % every_hours == 0)
        if issued_until is not None:
            until = np.datetime64(pd.Timestamp(issued_until).tz_convert(None), "h")
            issue = issue[stamps[issue] <= until]
        target = issue[:, None] + steps[None, :]
        inside = target < len(temp)
        rng = np.random.default_rng([seed, k])
        error = np.cumsum(rng.normal(0.0, step_sd, target.shape), axis=1)
        value = np.where(inside, temp[np.minimum(target, len(temp) - 1)] + error, np.nan)
        ok = inside & np.isfinite(value)
        frames.append(
            pd.DataFrame(
                {
                    "series_id": str(sid),
                    "issued_at": (start + np.broadcast_to(issue[:, None], target.shape)[ok]).astype("datetime64[ns]"),
                    "target_time": (start + target[ok]).astype("datetime64[ns]"),
                    "temperature": np.round(value[ok], 2),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["series_id", "issued_at", "target_time", "temperature"])
    out = pd.concat(frames, ignore_index=True)
    for column in ("issued_at", "target_time"):
        out[column] = out[column].dt.tz_localize("UTC")
    return out
