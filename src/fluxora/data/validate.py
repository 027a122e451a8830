"""Validation of canonical data: each broken rule raises a typed DataValidationError."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fluxora.data.schema import CANONICAL_COLUMNS, NUMERIC_COLUMNS, SERIES_ID, TIMESTAMP
from fluxora.errors import DataValidationError


@dataclass(frozen=True)
class ValidationSummary:
    rows: int
    series: int
    start: pd.Timestamp
    end: pd.Timestamp
    step: pd.Timedelta


def validate(df: pd.DataFrame, freq: str = "h") -> tuple[pd.DataFrame, ValidationSummary]:
    """Check the canonical rules and return the frame sorted by (series_id, timestamp).

    Rules: required columns, non-empty, UTC timestamps, numeric finite values,
    unique timestamps per series, and a regular step equal to `freq` within each series.
    """
    missing = [c for c in CANONICAL_COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError("columns", f"missing required columns {missing}; got {list(df.columns)}")
    if df.empty:
        raise DataValidationError("non_empty", "the data has no rows")
    ts = df[TIMESTAMP]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype) or str(ts.dt.tz) != "UTC":
        raise DataValidationError("timestamp_utc", f"'{TIMESTAMP}' must be timezone-aware UTC, got {ts.dtype}")
    for col in NUMERIC_COLUMNS:
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise DataValidationError("numeric", f"column '{col}' must be numeric, got {df[col].dtype}")
        bad = ~np.isfinite(df[col].to_numpy(dtype="float64"))
        if bad.any():
            first = df.loc[bad].iloc[0]
            raise DataValidationError(
                "finite",
                f"{int(bad.sum())} non-finite value(s) in '{col}', first at {first[TIMESTAMP]}",
                series_id=str(first[SERIES_ID]),
            )
    out = df.loc[:, list(CANONICAL_COLUMNS)].sort_values([SERIES_ID, TIMESTAMP], kind="stable")
    out = out.reset_index(drop=True)
    out[SERIES_ID] = out[SERIES_ID].astype(str)

    dup = out.duplicated([SERIES_ID, TIMESTAMP])
    if dup.any():
        first = out.loc[dup].iloc[0]
        raise DataValidationError(
            "unique_timestamps",
            f"{int(dup.sum())} duplicated timestamp(s), first {first[TIMESTAMP]}",
            series_id=str(first[SERIES_ID]),
        )
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq).nanos, unit="ns")
    same_series = out[SERIES_ID].eq(out[SERIES_ID].shift())
    diffs = out[TIMESTAMP].diff()[same_series]
    irregular = diffs != step
    if irregular.any():
        where = irregular[irregular].index[0]
        raise DataValidationError(
            "regular_step",
            f"expected a step of {step}, found {diffs.loc[where]} before {out.loc[where, TIMESTAMP]}",
            series_id=str(out.loc[where, SERIES_ID]),
        )
    summary = ValidationSummary(
        rows=len(out),
        series=out[SERIES_ID].nunique(),
        start=out[TIMESTAMP].min(),
        end=out[TIMESTAMP].max(),
        step=step,
    )
    return out, summary
