"""Rolling-origin backtests: the same windows for every model, a leaderboard, and the
point-in-time guard.

At each window's origin `o`, a model is (re)fitted only on `Panel.until(o - gap)`: every
training target and feature is observed by then. The states it forecasts from come from
`Panel.until(o)`. The only values after `o` a forecaster may read are target-time
temperatures in the `ex_post` and `forecast` weather modes, which is what those modes mean.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from fluxora.config import FluxoraConfig
from fluxora.data.resolution import Resolution
from fluxora.errors import ConfigError, InsufficientDataError
from fluxora.fanout import SERIAL, FanOut, chunks
from fluxora.models import metrics
from fluxora.models.forecasters import make_forecaster
from fluxora.models.native import NativeForecaster
from fluxora.models.panel import HOUR, WEATHER_MODES, OriginBatch, Panel, concat_batches

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Spec:
    """A resolved backtest: what every model is scored on."""

    horizon: int
    origins: np.ndarray  # (windows,) datetime64[ns] UTC
    gap_hours: int
    refit: str
    weather: str
    weather_noise_c: float
    seed: int
    stride_hours: int
    min_train_days: int
    mase_season_hours: int
    load_history_steps: int
    temp_history_steps: int
    max_origins: int = 0  # training origins sampled per fit (0: all at the stride)
    resolution: str = "h"  # the model step; horizon and the two history lengths are in its steps

    def to_dict(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "origins": [str(o) + "Z" for o in self.origins.astype("datetime64[s]")],
            "gap_hours": self.gap_hours,
            "refit": self.refit,
            "weather": self.weather,
            "weather_noise_c": self.weather_noise_c if self.weather == "forecast" else None,
            "train_origin_stride_hours": self.stride_hours,
            "mase_season_hours": self.mase_season_hours,
            "resolution": self.resolution,
        }


def resolve(cfg: FluxoraConfig, panel: Panel, *, weather: str | None = None, horizon: int | str | None = None) -> Spec:
    """Backtest windows for this data: `backtest.cutoffs`, or `windows` origins `step_hours`
    apart with the last one `horizon` steps before the shortest series ends. Everything in the
    spec that indexes arrays counts in steps of the panel's resolution (hours in the config)."""
    bt = cfg.backtest
    res = panel.resolution
    h = horizon_steps(horizon or bt.horizon or cfg.train.horizon, res)
    weather = weather_mode(cfg, weather or bt.weather)
    if weather == "issued" and not panel.forecasts:
        raise ConfigError(
            "invalid configuration: weather mode 'issued' needs issued weather forecasts; set "
            "data.weather_forecast.path (a long CSV/Parquet) or data.weather_forecast.provider, then run "
            "`fluxora run` (the features step stores them)"
        )
    if bt.refit not in ("once", "every"):
        raise ConfigError(f"invalid configuration: backtest.refit: {bt.refit!r} (use once or every)")
    if bt.cutoffs:
        origins = np.array(sorted(np.datetime64(c.rstrip("Z"), "ns") for c in bt.cutoffs))
    else:
        if bt.windows < 1 or bt.step_hours < 1:
            raise ConfigError("invalid configuration: backtest.windows and backtest.step_hours must be >= 1")
        last = min(s.end for s in panel.series.values()) - h * panel.step
        origins = last - np.arange(bt.windows - 1, -1, -1) * bt.step_hours * HOUR
    return Spec(
        horizon=h,
        origins=origins.astype("datetime64[ns]"),
        gap_hours=bt.gap_hours,
        refit=bt.refit,
        weather=weather,
        weather_noise_c=bt.weather_noise_c,
        seed=bt.seed,
        stride_hours=cfg.train.origin_stride_hours,
        min_train_days=cfg.train.min_train_days,
        mase_season_hours=bt.mase_season_hours,
        load_history_steps=res.steps(cfg.features.load_history_hours),
        temp_history_steps=res.steps(cfg.features.temp_history_hours),
        resolution=res.name,
        max_origins=cfg.train.max_origins,
    )


def horizon_steps(value: int | str, resolution: Resolution) -> int:
    """A configured horizon (`train.horizon`, `backtest.horizon`) in steps: a whole number of
    steps, or a duration ("24h", "90min") that is a whole number of them."""
    try:
        steps = resolution.horizon(value)
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: train.horizon / backtest.horizon: {exc}") from None
    if steps < 1 or steps > resolution.week:
        raise ConfigError(
            f"invalid configuration: horizon {value!r} is {steps} steps at {resolution.name}; "
            f"use 1 to {resolution.week} steps (up to a week)"
        )
    return steps


def weather_mode(cfg: FluxoraConfig, mode: str) -> str:
    """A weather mode with `auto` resolved: `issued` when a weather-forecast source is configured
    (what the service will serve), else `persistence` (what it serves without one)."""
    if mode == "auto":
        wf = cfg.data.weather_forecast
        return "issued" if wf.path or wf.provider else "persistence"
    if mode not in WEATHER_MODES:
        raise ConfigError(
            f"invalid configuration: weather: unknown mode {mode!r} (known: auto, {', '.join(WEATHER_MODES)})"
        )
    return mode


@dataclass
class ModelRun:
    """One model's forecasts on every window, aligned with `BacktestResult.evaluation`."""

    point: np.ndarray  # (N, H)
    quantiles: dict[float, np.ndarray]  # level -> (N, H)
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0


@dataclass
class BacktestResult:
    spec: Spec
    evaluation: OriginBatch  # every (series, window origin) scored, windows in order
    window: np.ndarray  # (N,) window index of each row
    mase_scale: dict[str, float]  # series -> in-sample seasonal naive MAE
    runs: dict[str, ModelRun] = field(default_factory=dict)

    def scores(self, name: str, rows: np.ndarray | slice = slice(None), step: int | None = None) -> dict[str, float]:
        run = self.runs[name]
        cols = slice(None) if step is None else slice(step, step + 1)
        y = self.evaluation.y[rows, cols]
        scale = np.array([self.mase_scale.get(s, np.nan) for s in self.evaluation.series[rows]])
        return metrics.scores(
            y,
            run.point[rows, cols],
            {lv: q[rows, cols] for lv, q in run.quantiles.items()},
            np.broadcast_to(scale[:, None], y.shape),
        )


def evaluation_batch(panel: Panel, origin: np.datetime64, spec: Spec, window: int) -> OriginBatch | None:
    """States at `origin` built from data observed by then; actuals after it for scoring."""
    lh, lt = spec.load_history_steps, spec.temp_history_steps
    eligible = {
        sid: np.array([origin])
        for sid, s in panel.series.items()
        if max(lh, lt) - 1 <= s.index_of(origin) < len(s.load) - 1
    }
    if not eligible:
        return None
    states = panel.until(origin).batch(eligible, spec.horizon, lh, lt)
    actuals = panel.batch(eligible, spec.horizon, lh, lt)
    scored = replace(states, y=actuals.y, temp_actual=actuals.temp_actual)
    return scored.with_weather(spec.weather, spec.weather_noise_c, seed=spec.seed * 100_003 + window)


def training_batch(panel: Panel, origin: np.datetime64, spec: Spec, window: int) -> OriginBatch:
    """Training origins whose targets are all observed by `origin - gap`."""
    seen = panel.until(origin - spec.gap_hours * HOUR)
    lh, lt = spec.load_history_steps, spec.temp_history_steps
    origins = seen.sampled_training_origins(spec.horizon, spec.stride_hours, lh, lt, spec.max_origins, spec.seed)
    batch = seen.batch(origins, spec.horizon, lh, lt)
    span = (batch.origins.max() - batch.origins.min()) / np.timedelta64(1, "D")
    if span < spec.min_train_days:
        raise InsufficientDataError(
            f"backtest window at {origin}: {span:.0f} days of training origins, need {spec.min_train_days} "
            "(lower backtest.windows or train.min_train_days, or provide more data)"
        )
    return batch.with_weather(spec.weather, spec.weather_noise_c, seed=spec.seed * 100_003 + 50_000 + window)


def _mase_scale(panel: Panel, season_hours: int) -> dict[str, float]:
    """Each series' in-sample seasonal naive MAE, the season in hours (steps at the panel's resolution)."""
    out = {}
    season = panel.resolution.steps(season_hours)
    for sid, s in panel.series.items():
        d = np.abs(s.load[season:] - s.load[:-season]) if len(s.load) > season else np.array([])
        out[sid] = float(np.nanmean(d)) if d.size else float("nan")
    return out


PER_SERIES_MODELS = frozenset({"prophet"})  # one model per series: fitted in groups of series


def run(
    panel: Panel,
    cfg: FluxoraConfig,
    names: list[str],
    spec: Spec,
    *,
    fixed: Mapping[str, NativeForecaster] | None = None,
    progress: Progress | None = None,
    fan_out: FanOut = SERIAL,
) -> BacktestResult:
    """Backtest the named forecasters (fitted per the refit policy) and already-fitted models
    (`fixed`, e.g. the current champion) on the same windows.

    Every (model, refit origin) is one work unit, and a per-series model is split further into
    groups of `infra.series_per_task` series; the units go through `fan_out` (serial by default).
    The data of a unit are cut from the full batches, so results do not depend on the fan-out."""
    say = progress or (lambda _: None)
    batches: list[OriginBatch] = []
    window_of: list[np.ndarray] = []
    used_origins: list[int] = []
    for k, origin in enumerate(spec.origins):
        batch = evaluation_batch(panel, origin, spec, k)
        if batch is not None:
            batches.append(batch)
            window_of.append(np.full(len(batch), k))
            used_origins.append(k)
    if not batches:
        raise InsufficientDataError("no backtest window has a series with history and observed targets")
    total = len(batches)
    # refit=once: one fit (at the first window) forecasts every window; every: one fit per window.
    segments = [list(range(total))] if spec.refit == "once" else [[i] for i in range(total)]
    collected: dict[str, list[_Unit]] = {name: [] for name in names}
    fit = partial(_fit_predict, cfg=cfg, horizon=spec.horizon, weather=spec.weather)
    for segment in segments:
        k = used_origins[segment[0]]
        train = training_batch(panel, spec.origins[k], spec, k)  # one at a time: it is the large part
        # A series with no training origin by the fit (e.g. the gate kept only its last weeks) is
        # not scored: a per-series model (Prophet) has no model for it, and every model is scored
        # on the same rows.
        trained = np.unique(train.series.astype(str))
        for i in segment:
            known = np.isin(batches[i].series.astype(str), trained)
            if not known.all():
                batches[i] = batches[i].take(np.flatnonzero(known))
                window_of[i] = window_of[i][known]
        units = _units(names, train, [batches[i] for i in segment], segment, cfg.infra.series_per_task)
        for unit in fan_out.map(fit, units):
            collected[unit.name].append(unit)
            say(f"backtest {unit.name}{unit.label}: fitted for window {segment[0] + 1}/{total} ({unit.fit_s:.1f} s)")
        del train
    result = BacktestResult(
        spec,
        _concat(batches),
        np.concatenate(window_of),
        _mase_scale(panel.until(spec.origins[0]), spec.mase_season_hours),
    )
    for name in names:
        result.runs[name] = _assemble(collected.pop(name), [len(b) for b in batches], spec.horizon)
        say(f"backtest {name}: {total} windows done, MAE {result.scores(name)['mae']:.4g}")
    for name, native in (fixed or {}).items():
        started = time.perf_counter()
        forecasts = [native.forecast_all(b.state(), b.origins, spec.horizon) for b in batches]
        result.runs[name] = _join([(f.point, f.quantiles) for f in forecasts], 0.0, time.perf_counter() - started)
        say(f"backtest {name}: scored on {total} windows, MAE {result.scores(name)['mae']:.4g}")
    return result


@dataclass
class _Unit:
    """One work unit: fit `name` on `train`, forecast `batches` (rows `rows` of windows `windows`).

    Sent to a worker with its data; comes back with the forecasts in place of the data."""

    name: str
    label: str
    windows: list[int]
    rows: list[np.ndarray | None]  # None: every row of the window
    train: OriginBatch | None
    batches: list[OriginBatch] | None
    forecasts: list[tuple[np.ndarray, dict[float, np.ndarray]]] = field(default_factory=list)
    fit_s: float = 0.0
    predict_s: float = 0.0


def _units(
    names: list[str], train: OriginBatch, batches: list[OriginBatch], windows: list[int], series_per_task: int
) -> Iterator[_Unit]:
    """Work units, lazily: a global model is one unit; a per-series model one per group of series."""
    for name in names:
        if name not in PER_SERIES_MODELS:
            yield _Unit(name, "", windows, [None] * len(batches), train, batches)
            continue
        series = np.unique(np.concatenate([b.series.astype(str) for b in batches]))
        groups = chunks(list(series), series_per_task)
        for g, group in enumerate(groups):
            rows = [np.flatnonzero(np.isin(b.series.astype(str), group)) for b in batches]
            label = f" (series {g + 1}/{len(groups)})" if len(groups) > 1 else ""
            train_rows = np.flatnonzero(np.isin(train.series.astype(str), group))
            sub = [b.take(r) for b, r in zip(batches, rows, strict=True)]
            yield _Unit(name, label, windows, list(rows), train.take(train_rows), sub)


def _fit_predict(unit: _Unit, cfg: FluxoraConfig, horizon: int, weather: str) -> _Unit:
    """Fit a fresh forecaster on the unit's training batch and forecast its windows."""
    assert unit.train is not None and unit.batches is not None
    forecaster = make_forecaster(unit.name, cfg, horizon, weather)
    started = time.perf_counter()
    forecaster.fit(unit.train)
    fit_s = time.perf_counter() - started
    forecasts = []
    started = time.perf_counter()
    for batch in unit.batches:
        fc = forecaster.predict(batch)
        forecasts.append((fc.point, fc.quantiles))
    predict_s = time.perf_counter() - started
    return replace(unit, train=None, batches=None, forecasts=forecasts, fit_s=fit_s, predict_s=predict_s)


def _assemble(units: list[_Unit], sizes: list[int], horizon: int) -> ModelRun:
    """Put the units' forecasts back in evaluation order (windows in order, rows as in each window)."""
    levels = sorted(units[0].forecasts[0][1])
    point = [np.full((n, horizon), np.nan) for n in sizes]
    quant = [{lv: np.full((n, horizon), np.nan) for lv in levels} for n in sizes]
    for unit in units:
        for i, rows, (p, q) in zip(unit.windows, unit.rows, unit.forecasts, strict=True):
            at = slice(None) if rows is None else rows
            point[i][at] = p
            for lv in levels:
                quant[i][lv][at] = q[lv]
    parts = list(zip(point, quant, strict=True))
    return _join(parts, sum(u.fit_s for u in units), sum(u.predict_s for u in units))


def _join(parts: list[tuple[np.ndarray, dict[float, np.ndarray]]], fit_s: float, pred_s: float) -> ModelRun:
    levels = sorted(parts[0][1])
    return ModelRun(
        np.concatenate([p for p, _ in parts]),
        {lv: np.concatenate([q[lv] for _, q in parts]) for lv in levels},
        fit_s,
        pred_s,
    )


def _concat(batches: list[OriginBatch]) -> OriginBatch:
    return concat_batches(batches)


def leaderboard(
    result: BacktestResult, metric: str = "mae", *, fan_out: FanOut = SERIAL, series_per_task: int = 50
) -> dict[str, Any]:
    """One entry per model: overall metrics, per horizon step and per series, best first.

    Per-series metrics go through `fan_out` in chunks of `series_per_task` series."""
    ev = result.evaluation
    sids = ev.series.astype(str)
    order = np.argsort(sids, kind="stable")  # a series' rows together, in their original order
    series, starts = np.unique(sids[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    scale = np.array([result.mase_scale.get(s, np.nan) for s in sids])
    entries: list[dict[str, Any]] = []
    for name, model_run in result.runs.items():
        parts = (
            _SeriesChunk(
                list(series[c]),
                starts[c] - starts[c.start],
                ends[c] - starts[c.start],
                *_rows(result, name, order[starts[c.start] : ends[c.stop - 1]], scale),
            )
            for c in _slices(len(series), series_per_task)
        )
        per_series = [entry for chunk in fan_out.map(_series_scores, parts) for entry in chunk]
        entries.append(
            {
                "model": name,
                "overall": result.scores(name),
                "fit_seconds": round(model_run.fit_seconds, 3),
                "predict_seconds": round(model_run.predict_seconds, 3),
                "per_horizon": [{"step": s + 1} | result.scores(name, step=s) for s in range(result.spec.horizon)],
                "per_series": per_series,
            }
        )
    if entries and metric not in entries[0]["overall"]:
        raise ConfigError(f"invalid configuration: unknown metric {metric!r} (known: {sorted(entries[0]['overall'])})")
    entries.sort(key=lambda e: (np.nan_to_num(e["overall"][metric], nan=np.inf), e["model"]))
    for rank, entry in enumerate(entries, 1):
        entry["rank"] = rank
    return {
        "metric": metric,
        "backtest": result.spec.to_dict(),
        "n_series": len(series),
        "n_forecasts": len(ev),
        "models": entries,
    }


@dataclass(frozen=True)
class _SeriesChunk:
    """The scored rows of a few series (one work unit of per-series metrics)."""

    series: list[str]
    starts: np.ndarray  # each series' first row in this chunk
    ends: np.ndarray
    y: np.ndarray
    point: np.ndarray
    quantiles: dict[float, np.ndarray]
    scale: np.ndarray


def _rows(
    result: BacktestResult, name: str, rows: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[float, np.ndarray], np.ndarray]:
    run = result.runs[name]
    return (
        result.evaluation.y[rows],
        run.point[rows],
        {lv: q[rows] for lv, q in run.quantiles.items()},
        scale[rows],
    )


def _slices(n: int, size: int) -> list[slice]:
    size = max(1, size)
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _series_scores(chunk: _SeriesChunk) -> list[dict[str, Any]]:
    """Every metric of each series in the chunk."""
    out = []
    for sid, a, b in zip(chunk.series, chunk.starts, chunk.ends, strict=True):
        y = chunk.y[a:b]
        scores = metrics.scores(
            y,
            chunk.point[a:b],
            {lv: q[a:b] for lv, q in chunk.quantiles.items()},
            np.broadcast_to(chunk.scale[a:b, None], y.shape),
        )
        out.append({"series_id": sid} | scores)
    return out


def best_baseline(board: dict[str, Any], names: tuple[str, ...]) -> tuple[str, float]:
    metric = board["metric"]
    found = [(e["model"], e["overall"][metric]) for e in board["models"] if e["model"] in names]
    if not found:
        raise ValueError(f"no baseline among {names} in the leaderboard")
    return min(found, key=lambda kv: kv[1])


# Leaderboard columns: (overall key, header, decimals). Fixed decimals per column so figures align
# and compare (`.4g` printed 39 next to 37.88); the caption gives the units.
_COLUMNS = (
    ("mae", "MAE", 3),
    ("rmse", "RMSE", 3),
    ("mape", "MAPE %", 2),
    ("smape", "sMAPE %", 2),
    ("mase", "MASE", 3),
    ("pinball", "pinball", 3),
)


def render(board: dict[str, Any]) -> str:
    """The leaderboard as a text table (`rich`, rendered without colour or control codes, so it
    reads the same in a terminal, a redirected log and a Prefect artifact)."""
    from io import StringIO

    from rich import box
    from rich.console import Console
    from rich.table import Table

    models = board["models"]
    cov = next((k for k in models[0]["overall"] if k.startswith("coverage_")), None) if models else None
    bt = board["backtest"]
    caption = (
        f"{board['n_series']} series x {len(bt['origins'])} origins, horizon {bt['horizon']} h, "
        f"weather {bt['weather']}, refit {bt['refit']}; ranked by {board['metric'].upper()}. "
        "MAE, RMSE, pinball in the data's load unit; MASE a ratio to the in-sample seasonal naive"
        + (f"; cov: share of actuals inside the {cov.removeprefix('coverage_')} % interval" if cov else "")
    )
    table = Table(box=box.SIMPLE_HEAD, caption=caption, caption_justify="left", pad_edge=False)
    table.add_column("rank", justify="right")
    table.add_column("model")
    for _, header, _ in _COLUMNS:
        table.add_column(header, justify="right")
    if cov:
        table.add_column(f"cov{cov.removeprefix('coverage_')} %", justify="right")
    table.add_column("fit s", justify="right")
    for e in models:
        o = e["overall"]
        cells = [_cell(o.get(key), decimals) for key, _, decimals in _COLUMNS]
        if cov:
            cells.append(_cell(o[cov] * 100 if o.get(cov) is not None else None, 1))
        table.add_row(str(e["rank"]), e["model"], *cells, _cell(e["fit_seconds"], 1))
    out = StringIO()
    Console(file=out, width=160, color_system=None, highlight=False, emoji=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()).strip("\n")


def _cell(value: float | None, decimals: int) -> str:
    return "-" if value is None or value != value else f"{value:.{decimals}f}"
