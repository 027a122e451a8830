"""The validation gate: checks, per-check policies, quarantine and exact row accounting.

Input is the raw canonical table from ingest (one row per source row, `ingest_issue` set where a
row could not be read). Each check finds rows and applies its policy:

- `fail`: stop; the report is written, validated data is not.
- `quarantine`: move the rows (or the whole series, for series-level checks) to the
  quarantine file with the check and reason.
- `repair`: fix in place and record the original value in the repairs file (`gaps`: insert
  interpolated rows for gaps up to `max_fill_steps`; older data before a longer gap is
  quarantined, so each series ends up regular).
- `warn`: count and report only (only where the output contract still holds).
- `load_only` (`no_weather` only): keep a series that has no temperature at all, with a one-line
  warning; it is forecast from load and calendar alone (`fluxora.features.design`).

Accounting: `rows_in` (raw rows) = `rows_out` (input rows that passed, repaired or not) +
`rows_quarantined`, always; inserted gap rows are `rows_filled` and never counted as input.
Finer-than-model data (15/30 min) is then averaged to the model resolution (`data.freq`):
load is a mean power (e.g. MW), so the hourly value is the mean of its quarter-hours.

This module runs the checks in order and applies the policies; what each check looks for is in
`fluxora.data.checks`, how values are repaired in `fluxora.data.repairs`, the accounting and the
report in `fluxora.data.report`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fluxora.config import GateConfig
from fluxora.data import checks, repairs
from fluxora.data.checks import ALLOWED, Refused, check_policies
from fluxora.data.errors import GateFailedError
from fluxora.data.frames import CHECK, REASON, REPAIRED, ROW, codes_of, extra_columns, first_series, ns, step_ns
from fluxora.data.report import CheckResult, Ledger, build_report
from fluxora.data.resample import to_model_resolution
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.sources import ISSUE

__all__ = ["CHECK", "REASON", "GateResult", "run_gate"]

log = logging.getLogger("fluxora.data")


@dataclass
class GateResult:
    data: pd.DataFrame
    quarantine: pd.DataFrame
    repairs: pd.DataFrame
    report: dict[str, Any]


def run_gate(raw: pd.DataFrame, cfg: GateConfig, model_freq: str = "h", resolution: str = "auto") -> GateResult:
    """Apply every check to `raw`; return validated data, quarantined rows, repairs and the report.

    Raises GateFailedError (a DataValidationError) when a check with policy `fail` finds rows,
    when the data's structure is unusable, or when no row passes.
    """
    check_policies(cfg)
    ledger = Ledger(
        rows_in=len(raw),
        series_in=int(raw[SERIES_ID].nunique()) if SERIES_ID in raw else 0,
        model_step=step_ns(model_freq),
        checks={name: CheckResult(getattr(cfg, name)) for name in ALLOWED},
    )
    try:
        return _run(raw, cfg, resolution, ledger)
    except Refused as exc:
        refused = exc  # raised below, outside the handler: the error chains nothing internal
    failure = {"check": refused.check, "message": refused.message, "series_id": refused.series_id}
    report = build_report(ledger, "failed", failure)
    raise GateFailedError(refused.check, refused.message, report, series_id=refused.series_id)


def _run(raw: pd.DataFrame, cfg: GateConfig, resolution: str, ledger: Ledger) -> GateResult:
    extras = extra_columns(raw)
    df = checks.working_frame(raw, extras)
    no_id = checks.missing_series_id(df)
    if no_id.any():
        df = _apply(ledger, "missing_series_id", df, no_id, "empty series_id (the row belongs to no series)")
        df[SERIES_ID] = df[SERIES_ID].cat.remove_unused_categories()
    bad_ts = checks.bad_timestamps(df)
    if bad_ts.any():
        df = _apply(ledger, "bad_timestamps", df, bad_ts, df[ISSUE].fillna("missing timestamp"))
    df = _apply(ledger, "non_numeric", df, checks.non_numeric(df), df[ISSUE])
    df, dup = checks.duplicates(df)
    df = _apply(ledger, "duplicates", df, dup, "duplicate (series_id, timestamp); the first row is kept")
    step_by_code, ledger.steps = checks.source_steps(df, ledger.model_step, resolution)
    df = _apply(
        ledger, "irregular_steps", df, checks.off_grid(df, step_by_code), "timestamp off the series' regular grid"
    )
    df = _apply(ledger, "non_finite", df, checks.non_finite(df), "load is NaN or infinite", column=LOAD)
    df = _apply(ledger, "negative", df, checks.negative(df), "negative load", column=LOAD)
    spikes = checks.spikes(df, cfg.outlier_threshold)
    df = _apply(ledger, "outliers", df, spikes, "load spike (robust z of the step change)", column=LOAD)
    n = cfg.flat_line_steps
    flat = checks.flat_lines(df, n)
    df = _apply(ledger, "flat_lines", df, flat, f"load repeats the same value for {n}+ steps (stuck meter?)")
    df = _missing_weather(ledger, cfg, df)
    df = _gaps(ledger, cfg, df, step_by_code, extras)
    short = checks.too_short(df, step_by_code, cfg.min_series_days)
    reason = f"series covers less than {cfg.min_series_days:g} days of history (data.gate.min_series_days)"
    df = _apply(ledger, "too_short", df, short, reason)
    if df.empty:
        raise Refused("non_empty", ledger.nothing_left())
    return _result(ledger, raw, df, extras)


def _result(ledger: Ledger, raw: pd.DataFrame, df: pd.DataFrame, extras: list[str]) -> GateResult:
    """The validated table at model resolution, the quarantine and repairs files, the report."""
    rows_out = int(df[ROW].ge(0).sum())
    rows_filled = int(df[ROW].lt(0).sum())
    rows_repaired = int((df[REPAIRED] & df[ROW].ge(0)).sum())
    quarantine = ledger.quarantine_frame(raw)
    if rows_out + len(quarantine) != ledger.rows_in:  # the gate's own invariant; a bug if broken
        counts = f"{ledger.rows_in} in, {rows_out} out, {len(quarantine)} quarantined"
        raise AssertionError(f"row accounting broken: {counts}")
    repaired_rows = ledger.repairs_frame()
    out = to_model_resolution(df.drop(columns=[ROW, ISSUE, REPAIRED]), ledger.steps, ledger.model_step, extras)
    checks.contract(out, ledger.model_step)
    report = build_report(ledger, "passed", None, rows_out, len(quarantine), rows_repaired, rows_filled, out)
    return GateResult(out, quarantine, repaired_rows, report)


# -- policies -----------------------------------------------------------------------------------
def _apply(
    ledger: Ledger, check: str, df: pd.DataFrame, mask: np.ndarray, reason: Any, column: str | None = None
) -> pd.DataFrame:
    """Apply `check`'s policy to the rows it flagged in `mask` (`column`: what `repair` fixes)."""
    mask = np.asarray(mask, dtype=bool)
    found = ledger.found(check, df, mask)
    if not found:
        return df
    policy = ledger.checks[check].policy
    if policy == "fail":
        where = np.flatnonzero(mask)[0]
        text = str(reason.iat[where]) if isinstance(reason, pd.Series) else str(reason)
        raise Refused(
            check,
            f"{found} row(s): {text}, first at {df[TIMESTAMP].iat[where]}",
            series_id=str(df[SERIES_ID].iat[where]),
        )
    if policy == "warn":
        return df
    if policy == "repair":
        assert column is not None
        df, record = repairs.interpolate(df, check, mask, column)
        ledger.repaired(check, record)
        return df
    return ledger.quarantine(df, check, mask, reason)


def _missing_weather(ledger: Ledger, cfg: GateConfig, df: pd.DataFrame) -> pd.DataFrame:
    """Series without any temperature follow `no_weather`; gaps in the others `missing_weather`."""
    load_only = checks.no_weather(df)
    if load_only.any():
        df = _no_weather(ledger, cfg, df, load_only)
        load_only = checks.no_weather(df)
    bad = checks.missing_weather(df, load_only)
    return _apply(ledger, "missing_weather", df, bad, "temperature missing", column=TEMPERATURE)


def _no_weather(ledger: Ledger, cfg: GateConfig, df: pd.DataFrame, load_only: np.ndarray) -> pd.DataFrame:
    ledger.found("no_weather", df, load_only)
    series = df.loc[load_only, SERIES_ID].astype(str).unique()
    total = int(df[SERIES_ID].nunique())
    example = ", ".join(series[:3]) + (", ..." if len(series) > 3 else "")
    what = f"{len(series)} of {total} series have no temperature at all ({example})"
    if cfg.no_weather == "fail":
        raise Refused(
            "no_weather",
            f"{what}; map data.columns.temperature or set data.gate.no_weather=load_only",
            series_id=str(series[0]),
        )
    if cfg.no_weather == "quarantine":
        return ledger.quarantine(df, "no_weather", load_only, "series has no temperature at all")
    log.warning("%s: forecast from load and calendar only (data.gate.no_weather=load_only)", what)
    return df


def _gaps(
    ledger: Ledger, cfg: GateConfig, df: pd.DataFrame, step_by_code: np.ndarray, extras: list[str]
) -> pd.DataFrame:
    """Gaps are counted in missing steps; `repair` fills short ones and cuts before long ones."""
    if df.empty:
        return df
    ts = ns(df[TIMESTAMP])
    step = step_by_code[codes_of(df)]
    missing = checks.missing_steps(df, ts, step)
    has_gap = missing > 0
    result = ledger.checks["gaps"]
    result.found = int(missing[has_gap].sum())
    if not has_gap.any():
        return df
    result.series = first_series(df, has_gap)
    if cfg.gaps == "fail":
        where = np.flatnonzero(has_gap)[0]
        raise Refused(
            "gaps",
            f"{result.found} missing step(s), first before {df[TIMESTAMP].iat[where]}",
            series_id=str(df[SERIES_ID].iat[where]),
        )
    if cfg.gaps == "quarantine":
        whole = pd.Series(has_gap).groupby(codes_of(df)).transform("any").to_numpy()
        return ledger.quarantine(df, "gaps", whole, "series has gaps (data.gate.gaps=quarantine)")
    # repair: keep the part after the last gap too long to fill, fill the short gaps in it
    limit = cfg.max_fill_steps
    too_long = missing > limit
    if too_long.any():
        last_cut = pd.Series(np.where(too_long, ts, np.iinfo(np.int64).min))
        older = ts < last_cut.groupby(codes_of(df)).transform("max").to_numpy()
        df = ledger.quarantine(df, "gaps", older, f"before a gap longer than {limit} steps")
        keep = ~older
        ts, step, missing = ts[keep], step[keep], missing[keep]
        missing = np.where(missing > limit, 0, missing)
    df, record = repairs.fill_gaps(df, ts, step, missing, extras)
    if record is not None:
        ledger.filled(record)
    return df
