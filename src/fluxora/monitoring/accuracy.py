"""Realized accuracy: the service's forecast log joined with the actuals that have arrived since.

Each logged forecast is exploded into one point per step (target = origin + step × the
model's step: an hour, 30 or 15 minutes, `fluxora.data.resolution`). A point is *matured*
when its target has a finite actual in the validated data, *pending* when its target lies
after the series' latest actual (or the series has none yet), and *missing* when the target is
inside the data but its actual is absent or not finite (quarantined, a gap). Only matured points are scored.

A forecast point served many times (same series, origin, model version, step and value: a
repeated request, or a shorter horizon from the same origin) counts once: how often consumers
ask for a series must not weight the accuracy.

Accuracy decay compares the served model's MAE with seasonal naive forecasts made from the same
origins on the very same matured targets (same time of day yesterday / last week, a day and a
week of the model's steps, as known at the origin), so it needs no registry and is unit-free.
The stricter of the two baselines decides, as in the promotion gate ("beat the better naive").

The weather split (`by_weather`) scores forecasts made *with* a weather forecast (the service
logged a vintage and no step fell back to persistence) apart from those made *without* one (any
step fell back, or a model that reads no weather forecast, or a row logged before the service
recorded it), each with its MAE ratio to the better seasonal naive on its own points.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fluxora.data.io import atomic_write_text
from fluxora.data.resolution import HOURLY, Resolution
from fluxora.data.schema import LOAD, SERIES_ID, TIMESTAMP
from fluxora.models.metrics import coverage, mae, mape
from fluxora.paths import ACCURACY_REPORT

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

NAIVE_LAGS = {"naive_daily": 24, "naive_weekly": 168}  # hours; in steps at the model's resolution
LOG_COLUMNS = (
    "id",
    "served_at",
    SERIES_ID,
    "origin",
    "model_version",
    "values",
    "quantiles",
    "weather_issued_at",
    "weather_fallback_steps",
)
MATURED, PENDING, MISSING = "matured", "pending", "missing"
WITH_WEATHER, WITHOUT_WEATHER = "with_forecast", "without_forecast"  # the groups of `by_weather`


def load_log(url: str, served_after: datetime | None = None) -> tuple[pd.DataFrame, str | None]:
    """Read the forecast log at `url`; (empty frame, why) when there is none yet.

    A missing SQLite file is not created (reading must not make a database the service would
    then find unmigrated). A database that cannot be reached raises: the caller retries later.
    """
    from sqlalchemy.engine import make_url

    from fluxora.servicedb import make_engine

    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        path = parsed.database
        if not path or path == ":memory:" or not Path(path).is_file():
            return empty_log(), f"no forecast log yet ({path or url} does not exist)"
    engine = make_engine(url)
    try:
        return read_log(engine, served_after)
    finally:
        engine.dispose()


def read_log(engine: Engine, served_after: datetime | None = None) -> tuple[pd.DataFrame, str | None]:
    """The forecast-log rows served after `served_after` (read only, through the service database's model)."""
    from sqlalchemy import inspect, select

    from fluxora.servicedb.models import ForecastLog

    if not inspect(engine).has_table(ForecastLog.__tablename__):
        return empty_log(), "no forecast log yet (the service's database has no forecast_log table)"
    t = ForecastLog
    stmt = select(
        t.id,
        t.served_at,
        t.series_id,
        t.origin,
        t.model_version,
        t.values,
        t.quantiles,
        t.weather_issued_at,
        t.weather_fallback_steps,
    )
    if served_after is not None:  # served_at is indexed; origin <= served_at, so this keeps every wanted row
        stmt = stmt.where(t.served_at > served_after.astimezone(UTC))
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(t.id)).all()
    if not rows:
        return empty_log(), "the forecast log is empty"
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(LOG_COLUMNS))
    # SQLite hands back naive datetimes; the service writes UTC, so naive means UTC.
    for col in ("served_at", "origin", "weather_issued_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame, None


def empty_log() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in LOG_COLUMNS})
    for col in ("served_at", "origin", "weather_issued_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def weather_group(log: pd.DataFrame) -> np.ndarray:
    """Per logged forecast: `with_forecast` when it used a weather forecast on every step (a vintage
    and no fallback), else `without_forecast`. Logs without the columns (older callers) are all without."""
    n = len(log)
    if "weather_fallback_steps" not in log or "weather_issued_at" not in log:
        return np.full(n, WITHOUT_WEATHER, dtype=object)
    fallbacks = pd.to_numeric(log["weather_fallback_steps"], errors="coerce").to_numpy(dtype="float64")
    with_vintage = log["weather_issued_at"].notna().to_numpy()
    return np.where((fallbacks == 0) & with_vintage, WITH_WEATHER, WITHOUT_WEATHER).astype(object)


def forecast_points(log: pd.DataFrame, interval: tuple[float, float], resolution: Resolution = HOURLY) -> pd.DataFrame:
    """One row per (distinct forecast, step): series, origin, step, target, value, lower, upper,
    and the forecast's weather group (`weather`: with or without a weather forecast). Steps are
    the model's (`resolution`): the target of step k is origin + k steps."""
    cols = [SERIES_ID, "origin", "model_version", "step", "target", "value", "lower", "upper", "weather"]
    if log.empty:
        return _typed_points(pd.DataFrame({c: [] for c in cols}))
    # Cheap first pass on whole forecasts (a dashboard polling one series repeats it many times).
    log = log.assign(
        _values=log["values"].map(lambda v: tuple(v or ())),
        _levels=log["quantiles"].map(lambda q: tuple(sorted(q)) if isinstance(q, dict) else ()),
    )
    log = log.drop_duplicates([SERIES_ID, "origin", "model_version", "_values", "_levels"], keep="last")
    lengths = log["values"].map(lambda v: len(v or ())).to_numpy(dtype="int64")
    n = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    step = np.arange(n, dtype="int64") - np.repeat(starts, lengths) + 1
    rows = np.repeat(np.arange(len(log)), lengths)
    origin = pd.DatetimeIndex(log["origin"]).tz_convert("UTC").as_unit("ns")[rows]
    frame = pd.DataFrame(
        {
            SERIES_ID: log[SERIES_ID].astype(str).to_numpy()[rows],
            "origin": origin,
            "model_version": log["model_version"].astype(str).to_numpy()[rows],
            "step": step,
            "target": origin + pd.to_timedelta(step * resolution.step_ns, unit="ns"),
            "value": _floats(chain.from_iterable(v or () for v in log["values"]), n),
            "lower": _level(log["quantiles"], interval[0], lengths),
            "upper": _level(log["quantiles"], interval[1], lengths),
            "weather": weather_group(log)[rows],
        }
    )
    # A shorter horizon from the same origin repeats a prefix: each point counts once, and the
    # copy that logged the interval wins.
    frame = frame.assign(_has=np.isfinite(frame["lower"]) & np.isfinite(frame["upper"])).sort_values(
        "_has", kind="stable"
    )
    keys = [SERIES_ID, "origin", "model_version", "step", "value"]
    frame = frame.drop_duplicates(keys, keep="last").drop(columns="_has").sort_values(keys[:4], kind="stable")
    return _typed_points(frame.reset_index(drop=True))


def _typed_points(frame: pd.DataFrame) -> pd.DataFrame:
    for col in ("origin", "target"):
        frame[col] = pd.to_datetime(frame[col], utc=True).dt.as_unit("ns")
    frame["step"] = frame["step"].astype("int64")
    frame["weather"] = frame["weather"].astype(object)
    for col in ("value", "lower", "upper"):
        frame[col] = frame[col].astype("float64")
    return frame


def _floats(values: Iterable[Any], n: int) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype="float64").reshape(n)


def _level(quantiles: pd.Series, level: float, lengths: np.ndarray) -> np.ndarray:
    """Values of one quantile level per point; NaN where a forecast did not log that level."""
    out: list[Any] = []
    for q, length in zip(quantiles, lengths, strict=True):
        values = None
        for key, vals in (q or {}).items():
            try:
                if math.isclose(float(key), level) and vals is not None and len(vals) == length:
                    values = vals
            except (TypeError, ValueError):
                continue
        out.extend(values if values is not None else [np.nan] * int(length))
    return _floats(out, int(lengths.sum()))


def join_actuals(points: pd.DataFrame, actuals: pd.DataFrame, resolution: Resolution = HOURLY) -> pd.DataFrame:
    """Add `actual`, the status of each point and the seasonal naive forecasts from the same
    origin (a day and a week of `resolution` steps back, as known at the origin)."""
    load = pd.to_numeric(actuals[LOAD], errors="coerce") if len(actuals) else pd.Series(dtype="float64")
    known = pd.DataFrame(
        {
            SERIES_ID: actuals[SERIES_ID].astype(str).to_numpy(),
            "t": pd.to_datetime(actuals[TIMESTAMP], utc=True).dt.as_unit("ns").to_numpy(),
            "y": load.to_numpy(dtype="float64"),
        }
    )
    known = known[np.isfinite(known["y"])].drop_duplicates([SERIES_ID, "t"], keep="last")
    known["t"] = pd.to_datetime(known["t"], utc=True).dt.as_unit("ns")
    lookup = known.set_index([SERIES_ID, "t"])["y"]
    out = points.copy()
    out["actual"] = _at(lookup, out[SERIES_ID], out["target"])
    last = known.groupby(SERIES_ID)["t"].max()
    last_actual = out[SERIES_ID].map(last)
    pending = last_actual.isna() | (out["target"] > last_actual)
    out["status"] = np.where(out["actual"].notna(), MATURED, np.where(pending, PENDING, MISSING))
    for name, hours in NAIVE_LAGS.items():
        # The latest value at the same time of day known at the origin: lag * ceil(step / lag) steps back.
        lag = resolution.steps(hours)
        back = lag * -(-out["step"] // lag)
        out[name] = _at(lookup, out[SERIES_ID], out["target"] - pd.to_timedelta(back * resolution.step_ns, unit="ns"))
    return out


def _at(lookup: pd.Series, series: pd.Series, times: pd.Series) -> np.ndarray:
    if lookup.empty or series.empty:
        return np.full(len(series), np.nan)
    index = pd.MultiIndex.from_arrays([series.to_numpy(), pd.DatetimeIndex(times)])
    return lookup.reindex(index).to_numpy(dtype="float64")


def summarize(
    joined: pd.DataFrame,
    *,
    min_points: int,
    interval: tuple[float, float],
    mae_ratio_threshold: float,
    served: int,
    resolution: Resolution = HOURLY,
) -> dict[str, Any]:
    """Overall, per step, per series, per day of origin and per model version; and the decay verdict.
    Each step's row names its lead time in hours (`lead_hours`: 0.5 for step 1 at 30 minutes), so
    figures read the same at every resolution."""
    matured = joined[joined["status"] == MATURED]
    counts = joined["status"].value_counts()
    overall = _scores(joined, min_points)
    by_series = _groups(joined, SERIES_ID, min_points)
    summary: dict[str, Any] = {
        "status": overall["status"],
        "reason": None,
        "interval": list(interval),
        "nominal_coverage": round(interval[1] - interval[0], 6),
        "min_points": min_points,
        "forecasts": {
            "served": served,
            "distinct": int(joined.groupby([SERIES_ID, "origin", "model_version"]).ngroups) if len(joined) else 0,
            "with_matured_points": int(matured.groupby([SERIES_ID, "origin", "model_version"]).ngroups)
            if len(matured)
            else 0,
        },
        "points": {s: int(counts.get(s, 0)) for s in (MATURED, PENDING, MISSING)},
        "overall": overall,
        "resolution": resolution.name,
        "by_step": _by_step(joined, min_points, resolution),
        "by_series": by_series,
        "by_origin_day": _groups(joined.assign(day=joined["origin"].dt.strftime("%Y-%m-%d")), "day", min_points),
        "by_model_version": _groups(joined, "model_version", min_points),
        "by_weather": _by_weather(joined, min_points, mae_ratio_threshold),
        "series_insufficient": sorted(s for s, r in by_series.items() if r["status"] != "ok"),
    }
    if overall["status"] != "ok":
        summary["reason"] = (
            f"{overall['matured']} matured forecast points (minimum {min_points}); {overall['pending']} pending"
        )
    summary["baselines"], summary["decay"] = _decay(matured, min_points, mae_ratio_threshold)
    return summary


def _by_weather(joined: pd.DataFrame, min_points: int, threshold: float) -> dict[str, dict[str, Any]]:
    """Both groups always: scores (status insufficient_data below `min_points` matured points), and
    the MAE ratio to the better seasonal naive on the group's own matured points (None below
    `min_points` points with a naive value)."""
    out: dict[str, dict[str, Any]] = {}
    for group in (WITH_WEATHER, WITHOUT_WEATHER):
        part = joined[joined["weather"] == group] if len(joined) else joined
        scores = _scores(part, min_points)
        scores["forecasts"] = int(part.groupby([SERIES_ID, "origin", "model_version"]).ngroups) if len(part) else 0
        _, decay = _decay(part[part["status"] == MATURED], min_points, threshold)
        scores |= {"mae_ratio": decay["mae_ratio"], "baseline": decay["baseline"], "ratio_status": decay["status"]}
        out[group] = scores
    return out


def _by_step(joined: pd.DataFrame, min_points: int, resolution: Resolution) -> dict[str, dict[str, Any]]:
    return {k: {"lead_hours": int(k) / resolution.per_hour} | r for k, r in _groups(joined, "step", min_points).items()}


def _groups(frame: pd.DataFrame, key: str, min_points: int) -> dict[str, dict[str, Any]]:
    if frame.empty:
        return {}
    return {str(k): _scores(g, min_points) for k, g in frame.groupby(key, sort=True)}


def _scores(frame: pd.DataFrame, min_points: int) -> dict[str, Any]:
    status = frame["status"]
    m = frame[status == MATURED]
    a, f = m["actual"].to_numpy(), m["value"].to_numpy()
    lo, hi = m["lower"].to_numpy(), m["upper"].to_numpy()
    with_interval = np.isfinite(lo) & np.isfinite(hi)
    n = len(m)
    return {
        "status": "ok" if n >= min_points and n > 0 else "insufficient_data",
        "matured": n,
        "pending": int((status == PENDING).sum()),
        "missing": int((status == MISSING).sum()),
        "mae": _num(mae(a, f)) if n else None,
        "mape": _num(mape(a, f)) if n else None,
        "coverage": _num(coverage(a, lo, hi)) if with_interval.any() else None,
        "interval_points": int(with_interval.sum()),
    }


def _decay(matured: pd.DataFrame, min_points: int, threshold: float) -> tuple[dict[str, Any], dict[str, Any]]:
    baselines: dict[str, Any] = {}
    for name in NAIVE_LAGS:
        both = matured[np.isfinite(matured[name].to_numpy(dtype="float64"))]
        a = both["actual"].to_numpy()
        model, naive = mae(a, both["value"].to_numpy()), mae(a, both[name].to_numpy())
        ratio = model / naive if len(both) and naive > 0 else None
        baselines[name] = {"points": len(both), "mae": _num(model), "naive_mae": _num(naive), "mae_ratio": _num(ratio)}
    usable = {k: b for k, b in baselines.items() if b["points"] >= min_points and b["mae_ratio"] is not None}
    if not usable:
        reason = (
            f"fewer than {min_points} matured points with a seasonal naive value from the same origin, "
            "or the naive forecast is exact (constant actuals)"
        )
        return baselines, {
            "status": "insufficient_data",
            "reason": reason,
            "decayed": False,
            "mae_ratio": None,
            "baseline": None,
            "threshold": threshold,
        }
    name, worst = max(usable.items(), key=lambda kv: kv[1]["mae_ratio"])  # the better naive is the stricter test
    ratio = float(worst["mae_ratio"])
    return baselines, {
        "status": "ok",
        "reason": None,
        "decayed": ratio > threshold,
        "mae_ratio": ratio,
        "mae": worst["mae"],
        "naive_mae": worst["naive_mae"],
        "baseline": name,
        "threshold": threshold,
    }


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def accuracy_report(
    log: pd.DataFrame,
    actuals: pd.DataFrame,
    out_dir: Path,
    *,
    min_points: int,
    interval: Sequence[float],
    mae_ratio_threshold: float,
    note: str | None = None,
    window: dict[str, Any] | None = None,
    residual: Callable[[pd.DataFrame], dict[str, Any]] | None = None,
    resolution: Resolution = HOURLY,
) -> dict[str, Any]:
    """Score the logged forecasts against the actuals and write `accuracy.json` and `accuracy.html`.
    `resolution` is the step the forecasts count in (the champion's, `Contract.resolution`).

    Never raises on thin data: an empty log, nothing matured, NaN or constant actuals give a
    summary with status "insufficient_data", a reason and when the first figures can exist
    (`first_figures`). `residual`, given the joined points, adds residual drift (`residual`).
    """
    lo, hi = check_interval(interval)
    joined = join_actuals(forecast_points(log, (lo, hi), resolution), actuals, resolution)
    summary = summarize(
        joined,
        min_points=min_points,
        interval=(lo, hi),
        mae_ratio_threshold=mae_ratio_threshold,
        served=len(log),
        resolution=resolution,
    )
    if note and summary["status"] != "ok":
        summary["reason"] = note
    summary["first_figures"] = first_figures(joined, min_points, summary["status"])
    if residual is not None:
        summary["residual"] = residual(joined)
    out_dir = Path(out_dir)
    html_path, json_path = out_dir / f"{ACCURACY_REPORT}.html", out_dir / f"{ACCURACY_REPORT}.json"
    summary |= {
        "window": window or {},
        "generated_at": datetime.now(UTC).isoformat(),
        "html_path": str(html_path),
        "json_path": str(json_path),
    }
    atomic_write_text(html_path, render_html(summary))
    atomic_write_text(json_path, json.dumps(summary, indent=2, allow_nan=False) + "\n")  # last: complete marker
    return summary


def first_figures(joined: pd.DataFrame, min_points: int, status: str) -> str | None:
    """When an insufficient report will have its first figures: what has to happen, and from the
    pending targets, the hour by which `min_points` points can have matured."""
    if status == "ok":
        return None
    matured = int((joined["status"] == MATURED).sum()) if len(joined) else 0
    need = max(min_points - matured, 1)
    if not len(joined):
        return (
            "No served forecast is in the log yet. Figures appear once the service (`fluxora serve`) has "
            f"answered forecasts and the actuals of {min_points} of their target hours have been ingested "
            "(a point matures when its target hour's actual arrives)."
        )
    pending = joined.loc[joined["status"] == PENDING, "target"].sort_values()
    if len(pending) < need:
        return (
            f"{matured} matured points, {len(pending)} pending: not enough forecasts are pending to reach "
            f"{min_points} matured points; more served forecasts are needed."
        )
    at = pd.Timestamp(pending.iloc[need - 1])
    return (
        f"{matured} of {min_points} points matured. With the {len(pending)} pending points, the first figures "
        f"exist once actuals up to {at.isoformat()} (UTC) have been ingested."
    )


def check_interval(interval: Sequence[float]) -> tuple[float, float]:
    """The (lower, upper) quantile levels of the coverage interval; ValueError unless two levels in [0, 1]."""
    levels = sorted(float(q) for q in interval)
    if len(levels) != 2 or not 0.0 <= levels[0] < levels[1] <= 1.0:
        raise ValueError(f"monitor.accuracy_interval needs two quantile levels lo < hi in [0, 1], got {interval}")
    return levels[0], levels[1]


def render_html(summary: dict[str, Any]) -> str:
    """A small self-contained HTML page with the report's tables."""
    esc = html.escape
    o, d, p = summary["overall"], summary["decay"], summary["points"]
    lo, hi = summary["interval"]
    window = summary.get("window") or {}
    head = [
        f"<p>Forecasts served after {esc(str(window.get('served_after', '–')))}, scored against actuals up to "
        f"{esc(str(window.get('actuals_end', '–')))}.</p>",
        f"<p>Status: <b>{esc(summary['status'])}</b>{' — ' + esc(summary['reason']) if summary['reason'] else ''}</p>",
        f"<p>Points: {p[MATURED]} matured, {p[PENDING]} pending, {p[MISSING]} missing an actual. "
        f"Forecasts: {summary['forecasts']['served']} served, {summary['forecasts']['distinct']} distinct.</p>",
        f"<p>Overall MAE {_fmt(o['mae'])}, MAPE {_fmt(o['mape'])}%, coverage of the {lo:g}–{hi:g} interval "
        f"{_fmt(o['coverage'])} (nominal {summary['nominal_coverage']:g}).</p>",
        f"<p>Decay: {esc(d['status'])}; MAE / {esc(str(d['baseline']))} MAE = {_fmt(d['mae_ratio'])} "
        f"(threshold {d['threshold']:g}; decayed: {d['decayed']}).</p>",
    ]
    sections = [
        ("Per horizon step", "step", summary["by_step"]),
        ("Per day of origin (UTC)", "day", summary["by_origin_day"]),
        ("Per series", "series", summary["by_series"]),
        ("Per model version", "version", summary["by_model_version"]),
        ("With and without a weather forecast", "weather", summary["by_weather"]),
    ]
    if summary["status"] != "ok":  # no figures yet: say when there will be, not tables of "–"
        head = [
            head[0],
            head[1],
            f"<p><b>No figures yet.</b> {esc(summary.get('first_figures') or '')}</p>",
            f"<p>Points: {p[MATURED]} matured, {p[PENDING]} pending, {p[MISSING]} missing an actual. "
            f"Forecasts: {summary['forecasts']['served']} served, {summary['forecasts']['distinct']} distinct.</p>",
        ]
        sections = [(t, label, rows) for t, label, rows in sections if any(r.get("matured") for r in rows.values())]
    body = head + [_table(title, label, rows) for title, label, rows in sections]
    if summary.get("residual"):
        body.append(_residual_table(summary["residual"]))
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"  # noqa: E501
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Fluxora realized accuracy</title>"
        f"<style>{style}</style></head><body><h1>Realized accuracy</h1>{''.join(body)}</body></html>\n"
    )


def _residual_table(res: dict[str, Any]) -> str:
    """Residual drift per series: the latest day against the series' earlier days."""
    esc = html.escape
    if res["status"] != "ok":
        return f"<h2>Residual drift</h2><p>{esc(str(res['reason']))}</p>"
    rows = []
    for sid, r in sorted(res["series"].items()):
        cells = []
        for stat in ("residual_bias", "residual_ratio"):
            v = r.get("stats", {}).get(stat)
            if not v or v["value"] is None:
                cells.append("<td>–</td>")
                continue
            mark = " <b>DRIFT</b>" if v["drifted"] else ""
            base = "–" if v["baseline"] is None else f"{v['baseline']:.3f}"
            score = "–" if v["score"] is None else f"{v['score']:.1f}"
            cells.append(f"<td>{v['value']:.3f} (median {base}, {score} SD){mark}</td>")
        rows.append(f"<tr><td>{esc(sid)}</td><td>{esc(r['status'])}</td>{''.join(cells)}</tr>")
    share = res["drift_share"]
    return (
        f"<h2>Residual drift</h2><p>Latest day up to {esc(str(res['end']))} against each series' earlier days; "
        f"retrain signal: MAE / seasonal naive MAE drifted up in {len(res['series_drifted'])} of "
        f"{res['n_judged']} judged series (share {share:.2f}, threshold {res['drift_share_threshold']:.2f}). "
        f"Minimum effects {esc(json.dumps(res['min_effect']))}.</p>"
        "<table><tr><th>series</th><th>status</th><th>bias / level</th><th>MAE / naive MAE</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _table(title: str, label: str, rows: dict[str, dict[str, Any]]) -> str:
    cols = ("status", "matured", "pending", "missing", "mae", "mape", "coverage")
    header = "".join(f"<th>{c}</th>" for c in (label, *cols))
    lines = [
        f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>"
        for k, r in rows.items()
    ]
    return f"<h2>{title}</h2><table><tr>{header}</tr>{''.join(lines) or '<tr><td>none</td></tr>'}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
