"""The gate's checks: what is wrong with the data, row by row or series by series.

Each row-level check returns a boolean mask over the working frame (sorted by series and time
from `duplicates` on); what happens to the flagged rows is the check's policy (`fluxora.data.gate`).
Data that no policy can make usable (missing columns, naive timestamps, a resolution that does
not divide the model's, ...) is refused with `Refused`, which the gate turns into its failure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fluxora.config import GateConfig
from fluxora.data.frames import REPAIRED, ROW, as_category, codes_of, ns, same_series, step_ns
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.sources import ISSUE
from fluxora.errors import ConfigError

ALLOWED: dict[str, tuple[str, ...]] = {
    "missing_series_id": ("fail", "quarantine"),
    "bad_timestamps": ("fail", "quarantine"),
    "non_numeric": ("fail", "quarantine"),
    "duplicates": ("fail", "quarantine"),
    "irregular_steps": ("fail", "quarantine"),
    "non_finite": ("fail", "quarantine", "repair"),
    "negative": ("fail", "quarantine", "repair", "warn"),
    "outliers": ("fail", "quarantine", "repair", "warn"),
    "flat_lines": ("fail", "quarantine", "warn"),
    "no_weather": ("fail", "quarantine", "load_only"),
    "missing_weather": ("fail", "quarantine", "repair"),
    "gaps": ("fail", "quarantine", "repair"),
    "too_short": ("fail", "quarantine", "warn"),
}


class Refused(Exception):
    """A check stops the gate: `check` failed with `message` (first seen in `series_id`).

    When the gate runs in series batches, each batch may refuse; `parts` carries what the gate
    needs to restate the message for all batches together (counts summed, the first example kept),
    `first_row` the input row it was first seen at (for checks that run in input order).
    """

    def __init__(
        self,
        check: str,
        message: str,
        series_id: str | None = None,
        parts: dict[str, Any] | None = None,
        first_row: int | None = None,
    ) -> None:
        super().__init__(check, message, series_id)
        self.check = check
        self.message = message
        self.series_id = series_id
        self.parts = parts or {}
        self.first_row = first_row


def check_policies(cfg: GateConfig) -> None:
    """Raise ConfigError for a policy a check does not support."""
    for check, allowed in ALLOWED.items():
        value = getattr(cfg, check)
        if value not in allowed:
            raise ConfigError(f"invalid configuration: data.gate.{check}: {value!r} is not one of {', '.join(allowed)}")


# -- structure ----------------------------------------------------------------------------------
def working_frame(raw: pd.DataFrame, extras: list[str], rows: np.ndarray | None = None) -> pd.DataFrame:
    """Check the schema, then return the gate's working copy: UTC, categorical ids, float values.

    `rows` are the input row numbers of `raw`'s rows (a batch of series of a larger table);
    default 0, 1, 2, ...
    """
    missing = [c for c in (SERIES_ID, TIMESTAMP, LOAD) if c not in raw.columns]
    if missing:
        raise Refused("columns", f"missing required columns {missing}; got {list(raw.columns)}")
    if raw.empty:
        raise Refused("non_empty", "the data has no rows")
    df = raw.copy(deep=False)  # columns are replaced, never modified in place
    if TEMPERATURE not in df.columns:
        df[TEMPERATURE] = np.nan
    if ISSUE not in df.columns:
        df[ISSUE] = None
    if not isinstance(df[TIMESTAMP].dtype, pd.DatetimeTZDtype):
        raise Refused("timestamp_utc", f"'{TIMESTAMP}' must be timezone-aware, got {df[TIMESTAMP].dtype}")
    df[TIMESTAMP] = df[TIMESTAMP].dt.tz_convert("UTC")
    df[SERIES_ID] = as_category(df[SERIES_ID])  # integer codes make sorting and grouping cheap
    for col in (LOAD, TEMPERATURE, *extras):
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise Refused("numeric", f"column '{col}' must be numeric, got {df[col].dtype}")
        df[col] = df[col].astype("float64")
    df[ROW] = np.arange(len(df), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    df[REPAIRED] = False
    return df


def contract(out: pd.DataFrame, model_step: int) -> None:
    """What downstream relies on: finite load, temperature finite throughout a series or absent
    from all of it (a load-only series), and one regular model step per series."""
    for col in (LOAD, TEMPERATURE):
        bad = ~np.isfinite(out[col].to_numpy())
        if col == TEMPERATURE:
            bad &= ~no_weather(out)
        if bad.any():
            where = np.flatnonzero(bad)[0]
            raise Refused(
                "contract",
                f"'{col}' still has {int(bad.sum())} non-finite value(s) after repair (nothing to interpolate from)",
                series_id=str(out[SERIES_ID].iat[where]),
                parts={
                    "kind": "non_finite_after_repair",
                    "order": 0 if col == LOAD else 1,
                    "column": col,
                    "count": int(bad.sum()),
                },
            )
    ts = ns(out[TIMESTAMP])
    irregular = same_series(out) & (np.diff(ts, prepend=ts[:1]) != model_step)
    if irregular.any():
        where = np.flatnonzero(irregular)[0]
        raise Refused(
            "contract",
            f"irregular step before {out[TIMESTAMP].iat[where]} after the gate",
            series_id=str(out[SERIES_ID].iat[where]),
            parts={"order": 2},
        )


# -- rows that ingest could not read ------------------------------------------------------------
def missing_series_id(df: pd.DataFrame) -> np.ndarray:
    """Rows whose series id is missing or blank: they belong to no series the API could address."""
    ids = df[SERIES_ID]
    blank = np.array([not str(name).strip() for name in ids.cat.categories] + [True])  # last: code -1 (null)
    return blank[codes_of(df)]


def bad_timestamps(df: pd.DataFrame) -> np.ndarray:
    return df[TIMESTAMP].isna().to_numpy()


def non_numeric(df: pd.DataFrame) -> np.ndarray:
    issue = df[ISSUE]
    has = issue.notna().to_numpy()
    found = np.zeros(len(df), dtype=bool)
    if has.any():
        found[has] = issue[has].astype(str).str.startswith("non-numeric").to_numpy()
    return found


# -- time axis ----------------------------------------------------------------------------------
def duplicates(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Sort by (series, time, input row) and flag every repeat of a (series, time) after the first."""
    codes = codes_of(df)
    ts = ns(df[TIMESTAMP])
    step_code, step_ts = np.diff(codes), np.diff(ts)
    if not ((step_code > 0) | ((step_code == 0) & (step_ts >= 0))).all():  # exports are mostly sorted already
        order = np.lexsort((df[ROW].to_numpy(), ts, codes))
        df = df.iloc[order].reset_index(drop=True)
        codes, ts = codes[order], ts[order]
    dup = np.zeros(len(df), dtype=bool)
    dup[1:] = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
    return df, dup


def source_steps(df: pd.DataFrame, model_step: int, resolution: str) -> tuple[np.ndarray, dict[str, int]]:
    """Each series' step (median spacing) unless configured: by series code, and by series id.

    Refuses a step that does not divide the model resolution.
    """
    names = np.asarray(df[SERIES_ID].cat.categories, dtype=object)
    ts = ns(df[TIMESTAMP])
    diffs = np.where(same_series(df), np.diff(ts, prepend=ts[:1]), np.nan)
    codes = codes_of(df)
    if resolution != "auto":
        step = pd.Series(float(step_ns(resolution)), index=np.unique(codes))
    else:
        step = pd.Series(diffs).groupby(codes).median().fillna(float(model_step))
    step_by_code = np.full(len(names), model_step, dtype="int64")
    step_by_code[step.index.to_numpy()] = step.round().to_numpy(dtype="int64")
    for code in step.index:
        value = int(step_by_code[code])
        if value <= 0 or value > model_step or model_step % value != 0:
            raise Refused(
                "resolution",
                f"step {pd.Timedelta(value)} does not divide the model resolution "
                f"{pd.Timedelta(model_step)}; set data.freq or data.resolution",
                series_id=str(names[code]),
            )
    return step_by_code, {str(names[c]): int(step_by_code[c]) for c in step.index}


def off_grid(df: pd.DataFrame, step_by_code: np.ndarray) -> np.ndarray:
    """Rows off their series' regular grid (the grid anchored where most of its rows are)."""
    codes = codes_of(df)
    offset = ns(df[TIMESTAMP]) % step_by_code[codes]
    if not offset.any():  # every row on its grid (the usual case): skip the per-series anchor
        return np.zeros(len(df), dtype=bool)
    anchor = pd.Series(offset).groupby(codes).transform("median").to_numpy()
    return offset != anchor


def missing_steps(df: pd.DataFrame, ts: np.ndarray, step: np.ndarray) -> np.ndarray:
    """How many steps are missing before each row (`ts`, `step`: its instant and series step)."""
    return np.where(same_series(df), np.diff(ts, prepend=ts[:1]) // step - 1, 0)


def too_short(df: pd.DataFrame, step_by_code: np.ndarray, min_days: float) -> np.ndarray:
    """Rows of series that cover less than `min_days` of history."""
    if df.empty:
        return np.zeros(0, dtype=bool)
    codes = codes_of(df)
    ts = pd.Series(ns(df[TIMESTAMP]))
    bounds = ts.groupby(codes).agg(["min", "max"])
    span = bounds["max"] - bounds["min"] + step_by_code[bounds.index.to_numpy()]
    days = span / 86_400e9
    short = days[days < min_days].index.to_numpy()
    return np.isin(codes, short)


# -- values -------------------------------------------------------------------------------------
def non_finite(df: pd.DataFrame) -> np.ndarray:
    return ~np.isfinite(df[LOAD].to_numpy())


def negative(df: pd.DataFrame) -> np.ndarray:
    return df[LOAD].to_numpy() < 0


def spikes(df: pd.DataFrame, threshold: float) -> np.ndarray:
    """A spike jumps away and straight back: both step changes are huge and of opposite sign."""
    if len(df) < 3:
        return np.zeros(len(df), dtype=bool)
    load = df[LOAD].to_numpy()
    d = np.where(same_series(df), np.diff(load, prepend=load[:1]), np.nan)
    keys = codes_of(df)
    med = pd.Series(d).groupby(keys).transform("median").to_numpy()
    mad = pd.Series(np.abs(d - med)).groupby(keys).transform("median").to_numpy() * 1.4826
    scale = np.where(mad > 0, mad, np.nan)
    z = (d - med) / scale
    z_next = np.append(z[1:], np.nan)
    with np.errstate(invalid="ignore"):
        return (np.abs(z) > threshold) & (np.abs(z_next) > threshold) & (np.sign(z) != np.sign(z_next))


def flat_lines(df: pd.DataFrame, steps: int) -> np.ndarray:
    """The repeats of a value held for `steps` steps or more (a stuck meter); off below 2."""
    if steps < 2 or df.empty:
        return np.zeros(len(df), dtype=bool)
    load = df[LOAD].to_numpy()
    start = ~same_series(df) | np.append(True, load[1:] != load[:-1])
    run_id = np.cumsum(start)
    run_len = np.bincount(run_id)[run_id]
    # the first value of a stuck stretch is a real reading; the repeats after it are not
    return (run_len >= steps) & ~start


def no_weather(df: pd.DataFrame) -> np.ndarray:
    """Rows of the series that have no finite temperature at all (load-only series)."""
    bad = ~np.isfinite(df[TEMPERATURE].to_numpy())
    if not bad.any():
        return bad
    ids = df[SERIES_ID]
    keys = codes_of(df) if isinstance(ids.dtype, pd.CategoricalDtype) else ids.to_numpy()
    return pd.Series(~bad).groupby(keys).transform("any").to_numpy() == 0


def missing_weather(df: pd.DataFrame, load_only: np.ndarray) -> np.ndarray:
    """Rows without a finite temperature in series that have temperature (not `load_only` rows)."""
    return ~np.isfinite(df[TEMPERATURE].to_numpy()) & ~load_only
