"""Weather forecasts as they were issued: a utility's own file, or Open-Meteo's past and live runs.

Long format, one row per (series_id, issued_at, target_time): `temperature` (°C) plus any other
numeric columns the source has (irradiance, wind, humidity), kept as they are. Every row read is
accounted for: kept, or dropped with its reason (`Screened.dropped`), never silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from fluxora.config import DataConfig, WeatherConfig
from fluxora.data.errors import DataSourceError
from fluxora.data.schema import ISSUED_AT, SERIES_ID, TARGET_TIME, TEMPERATURE, TIMESTAMP
from fluxora.data.weather import locations
from fluxora.errors import ConfigError

COLUMNS = (SERIES_ID, ISSUED_AT, TARGET_TIME, TEMPERATURE)
TEMPERATURE_RANGE_C = (-90.0, 60.0)  # beyond the records ever measured at 2 m

# (lat, lon, first UTC day, last UTC day) -> issued_at, target_time, temperature
FetchIssued = Callable[[float, float, date, date], pd.DataFrame]


@dataclass(frozen=True)
class Screened:
    """The rows that passed, and for each reason the number of rows dropped."""

    forecasts: pd.DataFrame
    rows_read: int
    dropped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        kept = len(self.forecasts)
        parts = ", ".join(f"{n} {why}" for why, n in self.dropped.items() if n)
        return f"{kept} of {self.rows_read} forecast rows kept" + (f"; dropped: {parts}" if parts else "")


def read(path: Path) -> Screened:
    """A forecast file (.csv or .parquet) in the long format above, screened."""
    if not path.is_file():
        raise DataSourceError(f"weather forecast file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".gz"):
            frame = pd.read_csv(path)
        else:
            raise DataSourceError(f"weather forecast file must be .csv or .parquet, got {path.name}")
    except (OSError, ValueError) as exc:
        raise DataSourceError(f"cannot read weather forecast file {path.name}: {exc}") from None
    return screen(frame)


def screen(frame: pd.DataFrame) -> Screened:
    """Parse and check a long forecast table: times to UTC, then drop (and count) rows with an
    unparseable time, a missing or impossible temperature, an issue time not before the target
    time (not a forecast), and repeated (series, issue, target) keys (the last one wins)."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataSourceError(f"weather forecasts need the columns {', '.join(COLUMNS)}; missing: {', '.join(missing)}")
    out = frame.copy()
    out[SERIES_ID] = out[SERIES_ID].astype("string").str.strip()
    for column in (ISSUED_AT, TARGET_TIME):
        out[column] = _utc(out[column], column)
    out[TEMPERATURE] = pd.to_numeric(out[TEMPERATURE], errors="coerce")
    low, high = TEMPERATURE_RANGE_C
    reasons = {
        "without a series_id": out[SERIES_ID].isna() | (out[SERIES_ID] == ""),
        "with an unparseable time": out[ISSUED_AT].isna() | out[TARGET_TIME].isna(),
        "without a temperature": out[TEMPERATURE].isna(),
        f"with a temperature outside {low:g}..{high:g} °C": ~out[TEMPERATURE].between(low, high)
        & out[TEMPERATURE].notna(),
        "issued at or after their target time": out[ISSUED_AT] >= out[TARGET_TIME],
    }
    dropped: dict[str, int] = {}
    bad = pd.Series(False, index=out.index)
    for why, mask in reasons.items():
        mask = mask.fillna(False) & ~bad  # each row counted once, under its first reason
        dropped[why] = int(mask.sum())
        bad |= mask
    out = out[~bad]
    key = [SERIES_ID, ISSUED_AT, TARGET_TIME]
    repeated = out.duplicated(key, keep="last")
    dropped["repeating an earlier (series, issue, target) row"] = int(repeated.sum())
    out = out[~repeated].astype({SERIES_ID: str}).sort_values(key, ignore_index=True)
    return Screened(out, len(frame), dropped)


def merge(kept: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Stored vintages and newly fetched ones: every (series, issue, target) once, the new row
    winning a repeated key (a provider may correct a past run)."""
    key = [SERIES_ID, ISSUED_AT, TARGET_TIME]
    both = pd.concat([kept, new], ignore_index=True)
    return both.drop_duplicates(key, keep="last").sort_values(key, ignore_index=True)


def _utc(values: pd.Series, column: str) -> pd.Series:
    """Times with an offset are converted to UTC; naive times are UTC (say so in the file)."""
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    if parsed.isna().all() and values.notna().any():
        raise DataSourceError(f"weather forecasts: no value of {column!r} is a time (e.g. 2024-01-01T06:00Z)")
    return parsed


def backfill(series_ids: list[str], cfg: WeatherConfig, start: date, end: date, fetch: FetchIssued) -> Screened:
    """Past forecasts for each series at its configured location (`data.weather.locations`),
    one request per distinct location, screened like a file."""
    where = locations(series_ids, cfg)
    by_location: dict[tuple[float, float], pd.DataFrame] = {}
    frames = []
    for sid in series_ids:
        point = where[sid]
        if point not in by_location:
            by_location[point] = fetch(point[0], point[1], start, end)
        frames.append(by_location[point].assign(**{SERIES_ID: sid}))
    if not frames:
        raise DataSourceError("no series to fetch weather forecasts for")
    return screen(pd.concat(frames, ignore_index=True))


PROVIDERS = ("", "open_meteo", "synthetic")


def collect(cfg: DataConfig, data: pd.DataFrame, base: Path, client: httpx.Client | None = None) -> Screened | None:
    """The issued forecasts `data.weather_forecast` names for the validated `data`, screened:
    a file (`path`), Open-Meteo's past runs at each series' location over the data's span plus
    its live forecast (`provider=open_meteo`), or seeded synthetic vintages (`provider=synthetic`).
    None when no source is configured."""
    wf = cfg.weather_forecast
    if wf.provider not in PROVIDERS:
        known = ", ".join(p or '""' for p in PROVIDERS)
        raise ConfigError(f"invalid configuration: data.weather_forecast.provider: {wf.provider!r} (known: {known})")
    if wf.path and wf.provider:
        raise ConfigError("invalid configuration: set data.weather_forecast.path or .provider, not both")
    if wf.max_age_hours < 1 or not 1 <= wf.hours <= 168:
        raise ConfigError("invalid configuration: data.weather_forecast needs 1 <= hours <= 168 and max_age_hours >= 1")
    if wf.path:
        path = Path(wf.path)
        return read(path if path.is_absolute() else base / path)
    if wf.provider == "synthetic":
        return screen(_synthetic(cfg, data))
    if wf.provider == "open_meteo":
        return _open_meteo(cfg, data, client)
    return None


def _synthetic(cfg: DataConfig, data: pd.DataFrame) -> pd.DataFrame:
    """Seeded vintages over the data, hourly as a weather service issues them (sub-hourly data is
    read on the whole hours). Past its end the weather they forecast is the last observed day's,
    repeated (the synthetic world has no observed future), so the last runs still cover the
    hours the service will serve."""
    from fluxora.data.synthetic import issued_forecasts

    wf = cfg.weather_forecast
    frame = data[[SERIES_ID, TIMESTAMP, TEMPERATURE]].copy()
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    frame = frame[frame[TIMESTAMP] == frame[TIMESTAMP].dt.floor("h")]  # forecasts target whole hours
    end = frame[TIMESTAMP].max()
    tails = []
    for _, group in frame.groupby(SERIES_ID, sort=False):
        last = group.tail(24)
        if len(last) < 24 or group[TIMESTAMP].max() != end:
            continue
        reps = -(-wf.hours // 24)
        tails.append(
            pd.DataFrame(
                {
                    SERIES_ID: group[SERIES_ID].iloc[0],
                    TIMESTAMP: end + pd.to_timedelta(np.arange(1, 24 * reps + 1), unit="h"),
                    TEMPERATURE: np.tile(last[TEMPERATURE].to_numpy(), reps),
                }
            )
        )
    truth = pd.concat([frame, *tails], ignore_index=True).sort_values([SERIES_ID, TIMESTAMP], kind="stable")
    return issued_forecasts(truth, wf.hours, wf.synthetic_issue_hours, wf.synthetic_error_c, cfg.seed, end)


def _open_meteo(cfg: DataConfig, data: pd.DataFrame, client: httpx.Client | None) -> Screened:
    """Past runs (issued 1 and 2 days before each hour) over the data's span, and the live
    forecast stamped with the time it was fetched, at each series' `data.weather` location."""
    from fluxora.data.connectors import open_meteo

    stamps = pd.to_datetime(data[TIMESTAMP], utc=True)
    first, last = stamps.min().date(), stamps.max().date()
    now = pd.Timestamp.now(tz="UTC").floor("s")
    days = max(1, min(16, -(-cfg.weather_forecast.hours // 24)))
    owned = client is None
    http = client or httpx.Client(headers={"User-Agent": "fluxora"}, follow_redirects=True)
    try:

        def fetch(lat: float, lon: float, start: date, end: date) -> pd.DataFrame:
            past = open_meteo.previous_runs(http, lat, lon, start, end)
            live = open_meteo.issued_forecast(http, lat, lon, now, days)
            return pd.concat([past, live], ignore_index=True)

        series = sorted(data[SERIES_ID].astype(str).unique())
        return backfill(series, cfg.weather, first, last, fetch)
    finally:
        if owned:
            http.close()
