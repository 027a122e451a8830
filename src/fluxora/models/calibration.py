"""Split-conformal calibration of quantile forecasts, per horizon step.

In-sample quantiles are too narrow (the model has seen the residuals it is judged on), so a
forecaster holds out its most recent training origins, fits on the older ones (ending a
horizon before the held-out ones, so no fitted target lies in the held-out period), forecasts
the held-out origins and measures, per step, how far the actual loads fall outside its
quantiles. Scores are divided by each origin's mean load over the last week (the scale of the
design matrix), so one table serves series of every size.

- A symmetric pair of levels (l, 1 - l), e.g. 0.1/0.9, is conformalized as an interval (CQR,
  Romano et al. 2019): the score is max(q_l - y, y - q_(1-l)), and both ends move outwards by
  its (1 - 2l) empirical quantile (negative: inwards). The central interval then covers
  1 - 2l of data like the held-out period, and a bias of the held-out fit that the refitted
  model does not share widens the interval instead of shifting it to one side.
- A level without a partner gets the one-sided correction: the l-quantile of y - q_l.
- The median (0.5) is left as the model made it.

Ranks are the finite-sample split-conformal ones, ceil((n + 1) p), rounded outwards. The
forecaster is then refitted on every origin and serves its quantiles plus the table
(`fluxora.models.native`); the table is stored in the model's native files.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fluxora.data.resolution import HOURLY, Resolution

MAX_HOLDOUT_SHARE = 1 / 3  # never hold out more than this share of the training span
MIN_SCORES = 30  # fewer finite scores at a step: no correction there (0)


def holdout_split(
    origins: np.ndarray, horizon: int, days: float, resolution: Resolution = HOURLY
) -> tuple[np.ndarray, np.ndarray] | None:
    """Row indices (fit, held out): held out are the origins in the last `days` (at most a third
    of the span); fit are those at least `horizon` steps of `resolution` before the first
    held-out origin, so their targets end before it. None when `days` is 0 or either part
    would be empty."""
    if days <= 0 or len(origins) == 0:
        return None
    t = np.asarray(origins, dtype="datetime64[ns]")
    fit_end, held_after = holdout_bounds(t.min(), t.max(), horizon, days, resolution)
    held = np.flatnonzero(t > held_after)
    fit = np.flatnonzero(t <= fit_end)
    if held.size == 0 or fit.size == 0:
        return None
    return fit, held


def holdout_bounds(
    first: Any, last: Any, horizon: int, days: float, resolution: Resolution = HOURLY
) -> tuple[np.datetime64, np.datetime64]:
    """(fit_end, held_after) of `holdout_split` for origins spanning `first`..`last`: fit origins
    are at or before fit_end, held-out ones after held_after (the distributed fit applies the
    same cut to each batch of series)."""
    first, last = np.asarray(first, dtype="datetime64[ns]"), np.asarray(last, dtype="datetime64[ns]")
    holdout = min(
        np.timedelta64(round(days * 24 * 3600), "s").astype("timedelta64[ns]"), (last - first) * MAX_HOLDOUT_SHARE
    )
    start = last - holdout
    return start - horizon * np.timedelta64(resolution.step_ns, "ns"), start


def conformal_table(y: np.ndarray, quantiles: np.ndarray, levels: tuple[float, ...], scale: np.ndarray) -> np.ndarray:
    """Per-level, per-step corrections (L, H) in units of `scale`, to add to the quantiles.

    y: (n, H) held-out actuals (NaN = unobserved); quantiles: (L, n, H) the model's quantiles
    at `levels` for the same origins; scale: (n,). Steps with fewer than `MIN_SCORES` finite
    scores get no correction.
    """
    y = np.asarray(y, dtype="float64")
    unit = scale[:, None]
    table = np.zeros((len(levels), y.shape[1]))
    for j, level in enumerate(levels):
        if level >= 0.5:
            continue
        k = _partner(levels, level)
        if k is None:
            table[j] = _per_step((y - quantiles[j]) / unit, level)
            continue
        spread = _per_step(np.maximum(quantiles[j] - y, y - quantiles[k]) / unit, levels[k] - level, outwards=True)
        table[j], table[k] = -spread, spread
    for j, level in enumerate(levels):
        if level > 0.5 and _partner(levels, level) is None:
            table[j] = _per_step((y - quantiles[j]) / unit, level)
    return table


def _partner(levels: tuple[float, ...], level: float) -> int | None:
    found = [k for k, other in enumerate(levels) if abs(other - (1.0 - level)) < 1e-9]
    return found[0] if found else None


def _per_step(scores: np.ndarray, p: float, *, outwards: bool | None = None) -> np.ndarray:
    """(n, H) scores -> (H,) the score of split-conformal rank for probability p at each step:
    ceil((n + 1) p) when rounding up (p > 0.5 or `outwards`), else floor((n + 1) p)."""
    up = p > 0.5 if outwards is None else outwards
    out = np.zeros(scores.shape[1])
    for h in range(scores.shape[1]):
        s = np.sort(scores[:, h][np.isfinite(scores[:, h])])
        n = s.size
        if n < MIN_SCORES:
            continue
        rank = math.ceil((n + 1) * p) if up else math.floor((n + 1) * p)
        out[h] = s[min(max(rank, 1), n) - 1]
    return out
