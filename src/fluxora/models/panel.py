"""Origin batches: states at forecast origins with the actual loads after them, built either
from validated canonical data in memory (backtests) or from Feast's point-in-time rows (training).

Everything a forecaster may read at an origin is in `load_history`/`temp_history` (observed at
or before the origin) and `target_temp` (the weather known at the origin, per weather mode).
`y` and `temp_actual` are after the origin: forecasters fit on them, never predict from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from fluxora.data.frames import data_resolution
from fluxora.data.resolution import HOURLY, Resolution
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.errors import ConfigError, InsufficientDataError
from fluxora.features.build import stack
from fluxora.features.names import (
    EVENT_TIMESTAMP,
    LOAD_HISTORY,
    SERIES_KEY,
    TARGET_TEMPERATURE,
    TEMP_FORECAST,
    TEMP_HISTORY,
    WEATHER_ORIGIN,
)
from fluxora.features.weather import IssuedLookup

HOUR = np.timedelta64(1, "h")
_HOUR_NS = 3_600_000_000_000
WEATHER_MODES = ("persistence", "ex_post", "forecast", "issued")


@dataclass(frozen=True)
class OriginBatch:
    """n forecast origins (any mix of series) with H steps each."""

    series: np.ndarray  # (n,) str
    origins: np.ndarray  # (n,) datetime64[ns], UTC
    load_history: np.ndarray  # (n, Lh), ends at the origin
    temp_history: np.ndarray  # (n, Lt), ends at the origin
    y: np.ndarray  # (n, H) actual load at origin + 1..H h; NaN where not observed
    temp_actual: np.ndarray  # (n, H) observed temperature at the targets (fitting only)
    target_temp: np.ndarray | None = None  # (n, H) temperature known at the origin, per weather mode
    issued_temp: np.ndarray | None = None  # (n, H) the issued forecast known at the origin (NaN: none)
    resolution: Resolution = HOURLY  # the step of histories and horizon (a fitted contract records it)

    @property
    def horizon(self) -> int:
        return int(self.y.shape[1])

    def __len__(self) -> int:
        return len(self.origins)

    def state(self) -> dict[str, np.ndarray]:
        """What a forecaster reads at the origins (the NativeForecaster state mapping)."""
        out = {LOAD_HISTORY: self.load_history, TEMP_HISTORY: self.temp_history, SERIES_KEY: self.series}
        if self.target_temp is not None:
            out[TARGET_TEMPERATURE] = self.target_temp
        out[TEMP_FORECAST] = self._issued()  # what a model trained on issued forecasts reads, as served
        return out

    def _issued(self) -> np.ndarray:
        return np.full(self.y.shape, np.nan) if self.issued_temp is None else self.issued_temp

    def take(self, rows: np.ndarray) -> OriginBatch:
        return OriginBatch(
            self.series[rows],
            self.origins[rows],
            self.load_history[rows],
            self.temp_history[rows],
            self.y[rows],
            self.temp_actual[rows],
            None if self.target_temp is None else self.target_temp[rows],
            None if self.issued_temp is None else self.issued_temp[rows],
            self.resolution,
        )

    def with_weather(self, mode: str, noise_c: float = 0.0, seed: int = 0) -> OriginBatch:
        """Set the target-time temperature the forecasters may read.

        persistence: none (the design uses the same hour on the latest observed day);
        ex_post: the observed temperature (a perfect weather forecast);
        forecast: observed + Gaussian error with standard deviation `noise_c * sqrt(lead / 24 h)`,
        so the error at a day ahead is `noise_c` and grows with the lead time, seeded;
        issued: the weather forecast as it was issued before the origin (`issued_temp`), NaN where
        there was none (the design then falls back to persistence for those steps).
        """
        if mode == "persistence":
            return replace(self, target_temp=None)
        if mode == "ex_post":
            return replace(self, target_temp=self.temp_actual)
        if mode == "forecast":
            rng = np.random.default_rng(seed)
            lead = np.sqrt(np.arange(1, self.horizon + 1) / self.resolution.per_hour / 24.0)
            noise = rng.normal(0.0, 1.0, self.temp_actual.shape) * noise_c * lead[None, :]
            return replace(self, target_temp=self.temp_actual + noise)
        if mode == "issued":
            return replace(self, target_temp=self._issued())
        raise ConfigError(f"invalid configuration: weather: unknown mode {mode!r} (known: {list(WEATHER_MODES)})")


@dataclass(frozen=True)
class Series:
    start: np.datetime64  # first timestamp, datetime64[ns] UTC
    load: np.ndarray
    temp: np.ndarray
    step: np.timedelta64 = HOUR  # the model resolution

    @property
    def end(self) -> np.datetime64:
        return self.start + (len(self.load) - 1) * self.step

    def index_of(self, t: np.datetime64) -> int:
        return int((np.asarray(t, dtype="datetime64[ns]") - self.start) // self.step)


class Panel:
    """Series in memory at the model resolution, from validated canonical data (sorted, one
    regular step for all series: the gate's `data.freq`). Horizons and history lengths given to
    its methods are in steps."""

    def __init__(
        self, series: dict[str, Series], forecasts: IssuedLookup | None = None, resolution: Resolution = HOURLY
    ) -> None:
        self.series = series
        self.forecasts = forecasts  # issued weather forecasts by (series, origin), when configured
        self.resolution = resolution

    @property
    def step(self) -> np.timedelta64:
        return np.timedelta64(self.resolution.step_ns, "ns")

    @classmethod
    def from_frame(cls, data: pd.DataFrame, forecasts: IssuedLookup | None = None) -> Panel:
        out: dict[str, Series] = {}
        resolution = data_resolution(data)
        step = np.timedelta64(resolution.step_ns, "ns")
        # observed: a categorical id column (as parquet reads it) groups by the ids present only
        for sid, group in data.groupby(SERIES_ID, sort=True, observed=True):
            stamps = group[TIMESTAMP].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
            if len(stamps) > 1 and not (np.diff(stamps) == step).all():
                raise InsufficientDataError(
                    f"series {sid!r} is not on a regular {resolution.name} step; validate it first (data.freq)"
                )
            out[str(sid)] = Series(
                stamps[0], group[LOAD].to_numpy(dtype="float64"), group[TEMPERATURE].to_numpy(dtype="float64"), step
            )
        if not out:
            raise InsufficientDataError("no data")
        return cls(dict(sorted(out.items())), forecasts, resolution)

    @classmethod
    def from_frames(cls, frames: Iterable[pd.DataFrame], forecasts: IssuedLookup | None = None) -> Panel:
        """`from_frame` of the validated table given as batches of whole series (e.g. read with
        `fluxora.data.io.SeriesBatches`), so the table is never in memory at once."""
        parts = [cls.from_frame(frame) for frame in frames if len(frame)]
        if not parts:
            raise InsufficientDataError("no data")
        # A batch whose series have one row each cannot show the step; the others must agree.
        seen = {p.resolution for p in parts if any(len(s.load) > 1 for s in p.series.values())}
        if len(seen) > 1:
            names = ", ".join(sorted(r.name for r in seen))
            raise InsufficientDataError(f"the series are at different steps ({names}); validate them first (data.freq)")
        resolution = seen.pop() if seen else HOURLY
        step = np.timedelta64(resolution.step_ns, "ns")
        out = {sid: replace(s, step=step) for p in parts for sid, s in p.series.items()}
        return cls(dict(sorted(out.items())), forecasts, resolution)

    def until(self, end: np.datetime64) -> Panel:
        """Only what was observed at or before `end`: the point-in-time guard of a backtest."""
        cut: dict[str, Series] = {}
        for sid, s in self.series.items():
            n = min(len(s.load), s.index_of(end) + 1)
            if n > 0:
                cut[sid] = Series(s.start, s.load[:n], s.temp[:n], s.step)
        return Panel(cut, self.forecasts, self.resolution)  # the forecasts are point in time by origin already

    def batch(self, origins: dict[str, np.ndarray], horizon: int, lh: int, lt: int) -> OriginBatch:
        """States at the given origins (per series, datetime64) with actuals after them."""
        parts: list[tuple[np.ndarray, ...]] = []
        steps = np.arange(1, horizon + 1)
        for sid, stamps in origins.items():
            s = self.series[sid]
            idx = ((np.asarray(stamps, dtype="datetime64[ns]") - s.start) // s.step).astype("int64")
            if idx.size and (idx.min() < max(lh, lt) - 1 or idx.max() >= len(s.load)):
                raise ValueError(f"origin outside the observed history of {sid!r}")
            target = idx[:, None] + steps[None, :]
            inside = target < len(s.load)
            clipped = np.minimum(target, len(s.load) - 1)
            y = np.where(inside, s.load[clipped], np.nan)
            temp = np.where(inside, s.temp[clipped], np.nan)
            at = s.start + idx * s.step
            parts.append(
                (
                    np.full(idx.size, sid, dtype=object),
                    at,
                    s.load[idx[:, None] + np.arange(-lh + 1, 1)[None, :]],
                    s.temp[idx[:, None] + np.arange(-lt + 1, 1)[None, :]],
                    y,
                    temp,
                    self._issued_at(sid, at, horizon) if self.forecasts else np.full(y.shape, np.nan),
                )
            )
        if not parts or sum(len(p[0]) for p in parts) == 0:
            raise InsufficientDataError("no forecast origins")
        cols = [np.concatenate([p[k] for p in parts]) for k in range(7)]
        issued = cols[6] if self.forecasts else None
        return OriginBatch(
            cols[0], cols[1].astype("datetime64[ns]"), cols[2], cols[3], cols[4], cols[5], None, issued, self.resolution
        )

    def _issued_at(self, sid: str, at: np.ndarray, horizon: int) -> np.ndarray:
        """The issued forecast at origins, one value per step of the horizon (the lookup's rows
        are at the model's step, `fluxora.features.weather.forecast_states`)."""
        assert self.forecasts is not None
        return self.forecasts.at(sid, at, horizon)

    def training_origins(self, horizon: int, stride_hours: int, lh: int, lt: int) -> dict[str, np.ndarray]:
        """Every `stride` hours (on the UTC clock), origins with full history and observed
        targets; `horizon`, `lh` and `lt` in steps."""
        return {sid: g.stamps() for sid, g in self._origin_grids(horizon, stride_hours, lh, lt).items()}

    def sampled_training_origins(
        self, horizon: int, stride_hours: int, lh: int, lt: int, max_total: int, seed: int
    ) -> dict[str, np.ndarray]:
        """`sample_origins(training_origins(...), max_total, seed)`, the same origins, without
        building every candidate first: at 10,000 series x 1 year hourly the candidates are 87 M
        stamps (0.7 GB) for a sample of 50,000. The candidates of a series are a regular grid, so
        the sample's positions map to stamps directly."""
        grids = self._origin_grids(horizon, stride_hours, lh, lt)
        sizes = np.array([g.count for g in grids.values()])
        keep = _sample_positions(sizes, max_total, seed)
        if keep is None:
            return {sid: g.stamps() for sid, g in grids.items()}
        bounds, offsets = _position_bounds(keep, sizes)
        return {sid: g.stamps(keep[bounds[i] : bounds[i + 1]] - offsets[i]) for i, (sid, g) in enumerate(grids.items())}

    def _origin_grids(self, horizon: int, stride_hours: int, lh: int, lt: int) -> dict[str, _Grid]:
        """Each series' candidate origins as a grid: positions `first + k * period` (k < count)."""
        stride_ns = stride_hours * _HOUR_NS
        out: dict[str, _Grid] = {}
        for sid, s in self.series.items():
            first, last = max(lh, lt) - 1, len(s.load) - 1 - horizon
            if last < first:
                continue
            step_ns = int(s.step.astype("timedelta64[ns]").astype("int64"))
            start_ns = int(np.asarray(s.start, dtype="datetime64[ns]").astype("int64"))
            # the step divides an hour (Resolution), so it divides the stride: a stamp off the
            # step's own grid is never on the stride's, else every `period`-th index is
            period = max(1, stride_ns // step_ns)
            if start_ns % step_ns:
                out[sid] = _Grid(s.start, s.step, first, period, 0)
                continue
            offset = (-(start_ns // step_ns + first)) % period  # steps to the first stamp on the stride
            aligned = first + offset
            count = (last - aligned) // period + 1 if aligned <= last else 0
            out[sid] = _Grid(s.start, s.step, aligned, period, count)
        if not any(g.count for g in out.values()):
            raise InsufficientDataError("no forecast origin has both a full history and observed targets")
        return out


@dataclass(frozen=True)
class _Grid:
    """A series' candidate training origins: indices `first + k * period` for k < `count`."""

    start: np.datetime64
    step: np.timedelta64
    first: int
    period: int
    count: int

    def stamps(self, positions: np.ndarray | None = None) -> np.ndarray:
        k = np.arange(self.count) if positions is None else np.asarray(positions, dtype="int64")
        return (self.start + (self.first + k * self.period) * self.step).astype("datetime64[ns]")


def _sample_positions(sizes: np.ndarray, max_total: int, seed: int) -> np.ndarray | None:
    """Sorted global positions of a seeded uniform sample of `max_total` (None: keep all)."""
    total = int(sizes.sum())
    if max_total <= 0 or total <= max_total:
        return None
    return np.sort(np.random.default_rng(seed).choice(total, max_total, replace=False))


def _position_bounds(keep: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each series' share of the sorted positions starts and ends, and each series' offset."""
    ends = np.cumsum(sizes)
    return np.searchsorted(keep, np.concatenate([[0], ends])), np.concatenate([[0], ends[:-1]])


def sample_origins(origins: dict[str, np.ndarray], max_total: int, seed: int) -> dict[str, np.ndarray]:
    """At most `max_total` origins, a seeded uniform sample across series and time (0: keep all).

    For large panels: 1,000 series x 1 year at a 1-hour stride is 8.6 M origins (x 24 design rows);
    a uniform sample keeps every series, hour of day and season represented at a size that trains.
    `Panel.sampled_training_origins` draws the same sample without building the candidates."""
    sizes = np.array([len(v) for v in origins.values()])
    keep = _sample_positions(sizes, max_total, seed)
    if keep is None:
        return origins
    bounds, offsets = _position_bounds(keep, sizes)
    return {
        sid: stamps[keep[bounds[i] : bounds[i + 1]] - offsets[i]] for i, (sid, stamps) in enumerate(origins.items())
    }


def concat_batches(batches: list[OriginBatch]) -> OriginBatch:
    """One batch of the rows of several, in order."""

    def cat(attr: str) -> np.ndarray:
        return np.concatenate([getattr(b, attr) for b in batches])

    target = None if batches[0].target_temp is None else cat("target_temp")
    issued = None if batches[0].issued_temp is None else cat("issued_temp")
    return OriginBatch(
        cat("series"),
        cat("origins"),
        cat("load_history"),
        cat("temp_history"),
        cat("y"),
        cat("temp_actual"),
        target,
        issued,
        batches[0].resolution,
    )


def batch_from_features(features: pd.DataFrame, panel: Panel, horizon: int, lh: int, lt: int) -> OriginBatch:
    """An origin batch from point-in-time feature rows (Feast), with actuals from the panel
    (`horizon`, `lh`, `lt` in steps of the panel's resolution)."""
    features = features.dropna(subset=[LOAD_HISTORY, TEMP_HISTORY]).sort_values([SERIES_ID, EVENT_TIMESTAMP])
    if features.empty:
        raise InsufficientDataError("the feature store returned no rows for the training origins")
    origins = features[EVENT_TIMESTAMP].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    series = features[SERIES_ID].astype(str).to_numpy(dtype=object)
    steps = np.arange(1, horizon + 1) * panel.step
    y = np.full((len(origins), horizon), np.nan)
    temp = np.full((len(origins), horizon), np.nan)
    for sid in np.unique(series):
        rows = np.flatnonzero(series == sid)
        s = panel.series[sid]
        idx = ((origins[rows, None] + steps[None, :] - s.start) // s.step).astype("int64")
        ok = (idx >= 0) & (idx < len(s.load))
        safe = np.clip(idx, 0, len(s.load) - 1)
        y[rows] = np.where(ok, s.load[safe], np.nan)
        temp[rows] = np.where(ok, s.temp[safe], np.nan)
    return OriginBatch(
        series,
        origins,
        stack(features[LOAD_HISTORY], lh),
        stack(features[TEMP_HISTORY], lt),
        y,
        temp,
        None,
        _issued_from_features(features, origins, horizon),
        panel.resolution,
    )


def _issued_from_features(features: pd.DataFrame, origins: np.ndarray, horizon: int) -> np.ndarray | None:
    """(n, horizon) issued forecast temperatures from Feast's point-in-time rows (at the model's
    step, as `fluxora.features.weather.forecast_states` stores them), NaN where the
    row Feast found is not the origin's own (Feast returns the latest row within the view's TTL,
    which for an origin without a forecast is an earlier origin's: its hours do not line up)."""
    if TEMP_FORECAST not in features.columns:
        return None
    out = np.full((len(origins), horizon), np.nan)
    if WEATHER_ORIGIN not in features.columns:
        return out
    own = features[WEATHER_ORIGIN].to_numpy(dtype="float64") == origins.astype("int64") // 1_000_000_000
    for i in np.flatnonzero(own):
        values = np.asarray(features[TEMP_FORECAST].iat[int(i)], dtype="float64")[:horizon]
        out[i, : len(values)] = values
    return out
