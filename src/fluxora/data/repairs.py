"""The gate's repairs: how flagged values are fixed and short gaps filled, with what was there.

Each repair returns the repaired frame and its record for the repairs file (series, timestamp,
check, column, original value; NaN for an inserted row).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fluxora.data.frames import CHECK, REPAIRED, ROW, codes_of, from_codes, ns, same_series, sort_by_series
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.sources import ISSUE


def interpolate(df: pd.DataFrame, check: str, mask: np.ndarray, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace flagged values by linear interpolation in time within the series."""
    df = df.copy()
    record = pd.DataFrame(
        {
            SERIES_ID: df.loc[mask, SERIES_ID],
            TIMESTAMP: df.loc[mask, TIMESTAMP],
            CHECK: check,
            "column": column,
            "original": df.loc[mask, column],
        }
    )
    values = df[column].to_numpy(copy=True)
    values[mask] = np.nan
    ts = ns(df[TIMESTAMP])
    starts = np.flatnonzero(~same_series(df))
    ends = np.append(starts[1:], len(df))
    number = np.cumsum(~same_series(df)) - 1  # series number of each row (data sorted by series)
    for n in np.unique(number[mask]):
        rows = np.arange(starts[n], ends[n])
        ok = np.isfinite(values[rows])
        if ok.any():  # else left NaN: the final contract check refuses it
            values[rows[~ok]] = np.interp(ts[rows[~ok]], ts[rows[ok]], values[rows[ok]])
    df[column] = values
    df.loc[mask, REPAIRED] = True
    return df, record


def fill_gaps(
    df: pd.DataFrame, ts: np.ndarray, step: np.ndarray, missing: np.ndarray, extras: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Insert linearly interpolated rows for the `missing` steps before each row (`ROW` = -1).

    `ts` and `step` are each row's instant and its series' step. The record is None when no
    row was inserted (and the frame is returned as it is).
    """
    after = np.flatnonzero(missing > 0)
    if after.size == 0:
        return df, None
    k = missing[after]
    rep = np.repeat(after, k)
    j = np.arange(rep.size) - np.repeat(np.cumsum(k) - k, k) + 1  # 1..k within each gap
    frac = j / np.repeat(k + 1, k)
    new: dict[str, Any] = {SERIES_ID: from_codes(codes_of(df)[rep], df)}
    new_ts = ts[rep - 1] + j * step[rep]
    new[TIMESTAMP] = pd.DatetimeIndex(new_ts.view("datetime64[ns]")).tz_localize("UTC")
    for col in (LOAD, TEMPERATURE, *extras):
        values = df[col].to_numpy()
        new[col] = values[rep - 1] + (values[rep] - values[rep - 1]) * frac
    filled = pd.DataFrame(new)
    filled[ISSUE] = None
    filled[ROW] = -1
    filled[REPAIRED] = False
    record = pd.DataFrame(
        {SERIES_ID: filled[SERIES_ID], TIMESTAMP: filled[TIMESTAMP], CHECK: "gaps", "column": LOAD, "original": np.nan}
    )
    return sort_by_series(pd.concat([df, filled[df.columns]], ignore_index=True)), record
