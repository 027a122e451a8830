"""Joining temperature to load by each series' configured location."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from fluxora.config import WeatherConfig
from fluxora.data.errors import DataSourceError
from fluxora.data.schema import SERIES_ID, TEMPERATURE, TIMESTAMP

# (lat, lon, first UTC day, last UTC day) -> timestamp, temperature
Fetch = Callable[[float, float, pd.Timestamp, pd.Timestamp], pd.DataFrame]


def parse_location(text: str, series_id: str) -> tuple[float, float]:
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError:
        raise DataSourceError(f"data.weather location for {series_id!r} must be 'lat,lon', got {text!r}") from None
    return lat, lon


def locations(series_ids: list[str], cfg: WeatherConfig) -> dict[str, tuple[float, float]]:
    """Each series' (lat, lon); a series without one is a clear error, not a silent NaN column."""
    out = {}
    for sid in series_ids:
        text = cfg.locations.get(sid, cfg.default_location)
        if not text:
            raise DataSourceError(
                f"no weather location for series {sid!r}; set data.weather.locations or data.weather.default_location"
            )
        out[sid] = parse_location(text, sid)
    return out


def join_temperature(load: pd.DataFrame, cfg: WeatherConfig, fetch: Fetch) -> pd.DataFrame:
    """Fill `temperature` from the provider at each series' location (fetched once per location)."""
    where = locations(sorted(load[SERIES_ID].astype(str).unique()), cfg)
    stamps = load[TIMESTAMP].dropna()
    first, last = stamps.min().floor("D"), stamps.max().floor("D")
    frames = []
    for place in sorted(set(where.values())):
        weather = fetch(place[0], place[1], first, last).set_index(TIMESTAMP)[TEMPERATURE]
        for sid in (s for s, p in where.items() if p == place):
            frames.append(pd.DataFrame({SERIES_ID: sid, TIMESTAMP: weather.index, "_weather": weather.to_numpy()}))
    table = pd.concat(frames, ignore_index=True)
    merged = load.merge(table, on=[SERIES_ID, TIMESTAMP], how="left", validate="many_to_one")
    own = merged[TEMPERATURE] if TEMPERATURE in merged else pd.Series(float("nan"), index=merged.index)
    merged[TEMPERATURE] = own.fillna(merged["_weather"])  # measured on site wins over the provider
    return merged.drop(columns=["_weather"])[list(load.columns) + ([TEMPERATURE] if TEMPERATURE not in load else [])]
