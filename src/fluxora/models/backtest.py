"""Rolling-origin backtests: the same windows for every model, a leaderboard, and the
point-in-time guard.

At each window's origin `o`, a model is (re)fitted only on `Panel.until(o - gap)`: every
training target and feature is observed by then. The states it forecasts from come from
`Panel.until(o)`. The only values after `o` a forecaster may read are target-time
temperatures in the `ex_post` and `forecast` weather modes, which is what those modes mean.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fluxora.config import FluxoraConfig
from fluxora.errors import ConfigError, InsufficientDataError
from fluxora.models import metrics
from fluxora.models.forecasters import Forecaster, make_forecaster
from fluxora.models.native import NativeForecaster
from fluxora.models.panel import HOUR, WEATHER_MODES, OriginBatch, Panel

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
    load_history_hours: int
    temp_history_hours: int

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
        }


def resolve(cfg: FluxoraConfig, panel: Panel, *, weather: str | None = None, horizon: int | None = None) -> Spec:
    """Backtest windows for this data: `backtest.cutoffs`, or `windows` origins `step_hours`
    apart with the last one `horizon` hours before the shortest series ends."""
    bt = cfg.backtest
    h = horizon or bt.horizon or cfg.train.horizon
    weather = weather or bt.weather
    if weather not in WEATHER_MODES:
        raise ConfigError(f"invalid configuration: backtest.weather: unknown mode {weather!r}")
    if bt.refit not in ("once", "every"):
        raise ConfigError(f"invalid configuration: backtest.refit: {bt.refit!r} (use once or every)")
    if bt.cutoffs:
        origins = np.array(sorted(np.datetime64(c.rstrip("Z"), "ns") for c in bt.cutoffs))
    else:
        if bt.windows < 1 or bt.step_hours < 1:
            raise ConfigError("invalid configuration: backtest.windows and backtest.step_hours must be >= 1")
        last = min(s.end for s in panel.series.values()) - h * HOUR
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
        load_history_hours=cfg.features.load_history_hours,
        temp_history_hours=cfg.features.temp_history_hours,
    )


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
    lh, lt = spec.load_history_hours, spec.temp_history_hours
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
    lh, lt = spec.load_history_hours, spec.temp_history_hours
    origins = seen.training_origins(spec.horizon, spec.stride_hours, lh, lt)
    batch = seen.batch(origins, spec.horizon, lh, lt)
    span = (batch.origins.max() - batch.origins.min()) / np.timedelta64(1, "D")
    if span < spec.min_train_days:
        raise InsufficientDataError(
            f"backtest window at {origin}: {span:.0f} days of training origins, need {spec.min_train_days} "
            "(lower backtest.windows or train.min_train_days, or provide more data)"
        )
    return batch.with_weather(spec.weather, spec.weather_noise_c, seed=spec.seed * 100_003 + 50_000 + window)


def _mase_scale(panel: Panel, season: int) -> dict[str, float]:
    out = {}
    for sid, s in panel.series.items():
        d = np.abs(s.load[season:] - s.load[:-season]) if len(s.load) > season else np.array([])
        out[sid] = float(np.nanmean(d)) if d.size else float("nan")
    return out


def run(
    panel: Panel,
    cfg: FluxoraConfig,
    names: list[str],
    spec: Spec,
    *,
    fixed: Mapping[str, NativeForecaster] | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Backtest the named forecasters (fitted per the refit policy) and already-fitted models
    (`fixed`, e.g. the current champion) on the same windows."""
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
    evaluation = _concat(batches)
    result = BacktestResult(
        spec,
        evaluation,
        np.concatenate(window_of),
        _mase_scale(panel.until(spec.origins[0]), spec.mase_season_hours),
    )
    train_cache: dict[int, OriginBatch] = {}
    total = len(batches)
    for name in names:
        forecaster: Forecaster | None = None
        parts: list[tuple[np.ndarray, dict[float, np.ndarray]]] = []
        fit_s = pred_s = 0.0
        for i, (k, batch) in enumerate(zip(used_origins, batches, strict=True)):
            if forecaster is None or spec.refit == "every":
                if k not in train_cache:
                    train_cache = {k: training_batch(panel, spec.origins[k], spec, k)}  # keep one at a time
                forecaster = make_forecaster(name, cfg, spec.horizon, spec.weather)
                started = time.perf_counter()
                forecaster.fit(train_cache[k])
                fit_s += time.perf_counter() - started
                say(f"backtest {name}: fitted for window {i + 1}/{total} ({time.perf_counter() - started:.1f} s)")
            started = time.perf_counter()
            fc = forecaster.predict(batch)
            pred_s += time.perf_counter() - started
            parts.append((fc.point, fc.quantiles))
        result.runs[name] = _join(parts, fit_s, pred_s)
        say(f"backtest {name}: {total} windows done, MAE {result.scores(name)['mae']:.4g}")
    for name, native in (fixed or {}).items():
        started = time.perf_counter()
        forecasts = [native.forecast_all(b.state(), b.origins, spec.horizon) for b in batches]
        result.runs[name] = _join([(f.point, f.quantiles) for f in forecasts], 0.0, time.perf_counter() - started)
        say(f"backtest {name}: scored on {total} windows, MAE {result.scores(name)['mae']:.4g}")
    return result


def _join(parts: list[tuple[np.ndarray, dict[float, np.ndarray]]], fit_s: float, pred_s: float) -> ModelRun:
    levels = sorted(parts[0][1])
    return ModelRun(
        np.concatenate([p for p, _ in parts]),
        {lv: np.concatenate([q[lv] for _, q in parts]) for lv in levels},
        fit_s,
        pred_s,
    )


def _concat(batches: list[OriginBatch]) -> OriginBatch:
    def cat(attr: str) -> np.ndarray:
        return np.concatenate([getattr(b, attr) for b in batches])

    target = None if batches[0].target_temp is None else cat("target_temp")
    return OriginBatch(
        cat("series"), cat("origins"), cat("load_history"), cat("temp_history"), cat("y"), cat("temp_actual"), target
    )


def leaderboard(result: BacktestResult, metric: str = "mae") -> dict[str, Any]:
    """One entry per model: overall metrics, per horizon step and per series, best first."""
    ev = result.evaluation
    entries: list[dict[str, Any]] = []
    for name, model_run in result.runs.items():
        per_series = []
        for sid in np.unique(ev.series.astype(str)):
            per_series.append({"series_id": sid} | result.scores(name, ev.series.astype(str) == sid))
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
        "n_series": len(np.unique(ev.series.astype(str))),
        "n_forecasts": len(ev),
        "models": entries,
    }


def best_baseline(board: dict[str, Any], names: tuple[str, ...]) -> tuple[str, float]:
    metric = board["metric"]
    found = [(e["model"], e["overall"][metric]) for e in board["models"] if e["model"] in names]
    if not found:
        raise ValueError(f"no baseline among {names} in the leaderboard")
    return min(found, key=lambda kv: kv[1])


def render(board: dict[str, Any]) -> str:
    """The leaderboard as a text table."""
    cols = ["mae", "rmse", "mape", "smape", "mase", "pinball"]
    cov = (
        next((k for k in board["models"][0]["overall"] if k.startswith("coverage_")), None) if board["models"] else None
    )
    header = f"{'rank':>4}  {'model':<22}" + "".join(f"{c.upper():>10}" for c in cols)
    header += f"{cov.replace('coverage_', 'COV') + '%':>8}" if cov else ""
    header += f"{'fit s':>8}"
    lines = [header]
    for e in board["models"]:
        o = e["overall"]
        line = f"{e['rank']:>4}  {e['model']:<22}" + "".join(f"{o.get(c, float('nan')):>10.4g}" for c in cols)
        line += f"{o[cov] * 100:>8.1f}" if cov and cov in o else ""
        line += f"{e['fit_seconds']:>8.1f}"
        lines.append(line)
    bt = board["backtest"]
    lines.append(
        f"({board['n_series']} series x {len(bt['origins'])} origins, horizon {bt['horizon']} h, "
        f"weather {bt['weather']}, refit {bt['refit']}; ranked by {board['metric'].upper()})"
    )
    return "\n".join(lines)
