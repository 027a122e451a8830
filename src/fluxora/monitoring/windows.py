"""Drift windows. The reference is season-matched so that daily and weekly cycles (and, where a
year of history exists, the annual one) are not mistaken for drift.

The current window is the latest `current_days`. The reference is the same span shifted back by
whole weeks, so it covers the same hours and weekdays: 52 weeks back (same season, same
weekdays) when the data reach that far, else the `reference_weeks` weeks just before.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fluxora.data.schema import TIMESTAMP

WEEK = pd.Timedelta(weeks=1)


@dataclass(frozen=True)
class Windows:
    reference: pd.DataFrame
    current: pd.DataFrame
    kind: str  # "seasonal_year" | "seasonal_weeks" | "preceding"
    current_start: pd.Timestamp  # exclusive
    end: pd.Timestamp  # inclusive
    shifts_weeks: tuple[int, ...]

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "current_start": str(self.current_start),
            "end": str(self.end),
            "shifts_weeks": list(self.shifts_weeks),
            "reference_rows": len(self.reference),
            "current_rows": len(self.current),
        }


def select(data: pd.DataFrame, current_days: int, mode: str, reference_weeks: int, reference_days: int) -> Windows:
    """Cut the reference and current windows out of canonical data (any number of series)."""
    if data.empty:
        empty = data.iloc[:0]
        now = pd.Timestamp(0, tz="UTC")
        return Windows(empty, empty, mode, now, now, ())
    ts = data[TIMESTAMP]
    end = ts.max()
    start = end - pd.Timedelta(days=current_days)
    current = data[ts > start]
    if mode == "preceding":
        ref_start = start - pd.Timedelta(days=reference_days)
        return Windows(data[(ts > ref_start) & (ts <= start)], current, mode, start, end, ())
    if mode != "seasonal":
        raise ValueError(f"monitor.reference must be 'seasonal' or 'preceding', got {mode!r}")
    first = ts.min()
    if start - 52 * WEEK >= first:
        shifts: tuple[int, ...] = (52,)
        kind = "seasonal_year"
    else:
        # Whole weeks back, at least as far as the current window is long (no overlap).
        min_shift = -(-current_days // 7)
        shifts = tuple(k for k in range(min_shift, min_shift + reference_weeks) if end - k * WEEK > first)
        kind = "seasonal_weeks"
    parts = [data[(ts > start - k * WEEK) & (ts <= end - k * WEEK)] for k in shifts]
    reference = pd.concat(parts) if parts else data.iloc[:0]
    return Windows(reference, current, kind, start, end, shifts)
