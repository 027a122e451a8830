"""Residual drift: drift of what the model gets wrong, per series, judged by effect size.

The served forecasts' matured points (`accuracy.join_actuals`: the forecast log joined with the
actuals, with seasonal naive forecasts from the same origins) are cut into back-to-back daily
windows by target hour. Per series and window, two statistics:

* ``residual_bias``  - mean residual (actual - forecast) / mean |actual|: the model now misses
  systematically (a level shift it has not learnt, a changed temperature response);
* ``residual_ratio`` - the model's MAE over the better seasonal naive's MAE on the same points:
  the champion against seasonal naive, i.e. whether the model's edge over naive went away.

The latest window is judged against the same statistic on the series' earlier windows with
`effect.judge` (robust SDs from their median *and* a minimum effect), like the load statistics.
Windows are a day long (the forecast log kept for monitoring covers `monitor.accuracy_days`, 14
by default, too short for the load statistics' 2-day windows), and need `RESIDUAL_MIN_POINTS`
matured points each.

Only ``residual_ratio`` drifting upwards (the model got worse than naive, relative to its own
record) counts towards a retrain, through the share of judged series like load drift; a bias
drift alone is reported (it is often a load change that load drift already reports).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from fluxora.data.schema import SERIES_ID
from fluxora.monitoring.effect import EffectSettings, judge

RESIDUAL_STATS = ("residual_bias", "residual_ratio")
RETRAIN_STATS = ("residual_ratio",)
RESIDUAL_WINDOW_DAYS = 1
RESIDUAL_MIN_POINTS = 24  # matured points a series needs in a window for its statistics
# Minimum effects (used unless monitor.drift_min_effect names the statistic): 5 % of the level
# for a bias, +0.25 in the MAE ratio to naive.
DEFAULT_MIN_EFFECT = {"residual_bias": 0.05, "residual_ratio": 0.25}


def residual_settings(s: EffectSettings) -> EffectSettings:
    return replace(s, min_effect={**DEFAULT_MIN_EFFECT, **s.min_effect})


def _window_stats(part: pd.DataFrame) -> dict[str, float] | None:
    if len(part) < RESIDUAL_MIN_POINTS:
        return None
    a, f = part["actual"].to_numpy(float), part["value"].to_numpy(float)
    level = float(np.mean(np.abs(a)))
    if not level > 0:
        return None
    out = {"residual_bias": float(np.mean(a - f)) / level, "residual_ratio": math.nan}
    naive = []
    for col in ("naive_daily", "naive_weekly"):
        n = part[col].to_numpy(float)
        ok = np.isfinite(n)
        if ok.sum() >= RESIDUAL_MIN_POINTS:
            naive.append((float(np.mean(np.abs(a[ok] - f[ok]))), float(np.mean(np.abs(a[ok] - n[ok])))))
    if naive:  # the stricter baseline: the better naive, as in the accuracy decay
        model_mae, naive_mae = min(naive, key=lambda mn: mn[1])
        if naive_mae > 0:
            out["residual_ratio"] = model_mae / naive_mae
    return out


def residual_drift(joined: pd.DataFrame, s: EffectSettings, share_threshold: float) -> dict[str, Any]:
    """Per series residual statistics judged against their own earlier daily windows, and the summary."""
    rs = residual_settings(s)
    matured = joined[joined["status"] == "matured"] if len(joined) else joined
    series: dict[str, dict[str, Any]] = {}
    end = None
    if len(matured):
        end = pd.Timestamp(matured["target"].max())
        seconds = (end - pd.to_datetime(matured["target"], utc=True)).dt.total_seconds().to_numpy()
        # Window 0 is the latest day (targets in (end - 1 day, end]), window j the j-th day before it.
        back = (seconds // (86400 * RESIDUAL_WINDOW_DAYS)).astype("int64")
        frame = matured.assign(_w=back)
        for sid, group in frame.groupby(SERIES_ID, sort=True):
            by_w: dict[int, dict[str, float] | None] = {
                int(np.asarray(w).item()): _window_stats(g) for w, g in group.groupby("_w")
            }
            current = by_w.get(0)
            history = [h for j in range(1, s.history_windows + 1) if (h := by_w.get(j)) is not None]
            if current is None or len(history) < s.min_history_windows:
                series[str(sid)] = {
                    "status": "insufficient_data",
                    "drifted": False,
                    "history_windows": len(history),
                    "stats": {},
                }
                continue
            stats = {}
            for name in RESIDUAL_STATS:
                values = [h[name] for h in history]
                stats[name] = {**judge(name, current[name], values, rs), "history": [_num(v) for v in values]}
            series[str(sid)] = {
                "status": "ok",
                "drifted": any(stats[n]["drifted"] for n in RETRAIN_STATS),
                "bias_drifted": stats["residual_bias"]["drifted"],
                "history_windows": len(history),
                "stats": stats,
            }
    judged = [sid for sid, r in series.items() if r["status"] == "ok"]
    drifted = sorted(sid for sid in judged if series[sid]["drifted"])
    share = len(drifted) / len(judged) if judged else None
    needed = RESIDUAL_WINDOW_DAYS * (s.min_history_windows + 1)
    return {
        "status": "ok" if judged else "insufficient_data",
        "reason": None
        if judged
        else f"no series has {needed} days of matured served forecasts yet "
        f"({RESIDUAL_MIN_POINTS} matured points a day; see monitor.accuracy_days)",
        "window_days": RESIDUAL_WINDOW_DAYS,
        "end": None if end is None else str(end),
        "min_effect": {k: rs.min_effect[k] for k in RESIDUAL_STATS},
        "drifted": share is not None and share >= share_threshold,
        "drift_share": share,
        "drift_share_threshold": share_threshold,
        "n_judged": len(judged),
        "series_drifted": drifted,
        "series_bias_drifted": sorted(sid for sid in judged if series[sid]["bias_drifted"]),
        "series": series,
    }


def _num(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
