"""Local time to UTC, with an explicit policy for the hours DST skips or repeats.

Energy feeds exported in local wall time break twice a year:

* spring-forward: a local hour does not exist (02:00-02:59 in Europe/Berlin on the last
  Sunday of March). `nonexistent="quarantine"` (default) marks such rows so the gate moves them
  to quarantine with the reason; `"shift_forward"` moves them to the first instant after the
  jump (02:30 -> 03:00, which then usually duplicates a real 03:00 row and is quarantined as a
  duplicate).
* fall-back: a local hour happens twice. `ambiguous="infer"` (default) reads each series in
  file order: the first occurrence of a repeated wall time is the earlier instant (still
  summer time), the second the later one (standard time). A third occurrence is a real
  duplicate. This assumes each series' rows are in chronological order, as exports are.
  `"earliest"`/`"latest"` pick one instant for all; `"quarantine"` marks them for quarantine.

Nothing is ever dropped here: rows that cannot be placed get a NaT timestamp and an issue text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

AMBIGUOUS_POLICIES = ("infer", "earliest", "latest", "quarantine")
NONEXISTENT_POLICIES = ("quarantine", "shift_forward")


def check_zone(name: str) -> str:
    """Return `name` if it is a valid IANA zone, else raise ValueError with a clear message."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None
    return name


@dataclass
class AmbiguityTracker:
    """Counts repeated local wall times per series across batches, for the `infer` policy."""

    seen: dict[tuple[str, int], int] = field(default_factory=dict)

    def occurrence(self, series_id: str, local_ns: int) -> int:
        key = (series_id, local_ns)
        self.seen[key] = self.seen.get(key, 0) + 1
        return self.seen[key]


def localize(
    local: pd.Series,
    series_ids: Any,  # pandas Series or Arrow array of ids, row-aligned with `local`
    tz: str,
    ambiguous: str = "infer",
    nonexistent: str = "quarantine",
    tracker: AmbiguityTracker | None = None,
) -> tuple[pd.Series, pd.Series]:
    """Naive local datetimes in `tz` -> (UTC datetimes, issue text or None per row)."""
    if ambiguous not in AMBIGUOUS_POLICIES:
        raise ValueError(f"data.ambiguous must be one of {', '.join(AMBIGUOUS_POLICIES)}, got {ambiguous!r}")
    if nonexistent not in NONEXISTENT_POLICIES:
        raise ValueError(f"data.nonexistent must be one of {', '.join(NONEXISTENT_POLICIES)}, got {nonexistent!r}")
    tracker = tracker or AmbiguityTracker()
    # in ns: `asi8` below counts in the index's own unit, and a file's microsecond stamps read as
    # nanoseconds were instants in January 1970 (every batch holding a DST change)
    idx = pd.DatetimeIndex(local).as_unit("ns")
    issues = pd.Series(None, index=local.index, dtype=object)
    placed = idx.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    unresolved = np.asarray(placed.isna()) & ~np.asarray(idx.isna())
    if not unresolved.any():
        return pd.Series(placed.tz_convert("UTC"), index=local.index), issues
    result = placed.asi8.copy()  # UTC instants in ns; NaT where unresolved
    sub = idx[unresolved]
    pos = np.flatnonzero(unresolved)
    early = sub.tz_localize(tz, ambiguous=np.ones(len(sub), dtype=bool), nonexistent="NaT")
    late = sub.tz_localize(tz, ambiguous=np.zeros(len(sub), dtype=bool), nonexistent="NaT")
    missing = np.asarray(early.isna())
    early_utc, late_utc = early.asi8, late.asi8
    shifted = sub.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").asi8
    ids = np.asarray(series_ids, dtype=object)[pos]  # only for the few rows DST touches
    for j, p in enumerate(pos.tolist()):
        wall = sub[j]
        if missing[j]:
            if nonexistent == "shift_forward":
                result[p] = shifted[j]
            else:
                issues.iat[p] = f"nonexistent local time {wall} in {tz} (DST spring-forward)"
            continue
        if ambiguous == "quarantine":
            issues.iat[p] = f"ambiguous local time {wall} in {tz} (DST fall-back)"
        elif ambiguous == "earliest" or (
            ambiguous == "infer" and tracker.occurrence(str(ids[j]), int(wall.value)) == 1
        ):
            result[p] = early_utc[j]
        else:
            result[p] = late_utc[j]
    utc = pd.Series(pd.DatetimeIndex(result.view("datetime64[ns]")).tz_localize("UTC"), index=local.index)
    return utc, issues
