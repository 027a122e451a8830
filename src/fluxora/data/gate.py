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
The model resolution (`data.freq`) is the data's own by default (`auto`: each series' step; the
coarsest when they differ, with a one-line warning naming `data.freq`, `model_freq`). Finer data
are averaged to it: load is a mean power (e.g. MW), so an hourly value (`data.freq=h`) is the mean
of its quarter-hours.

This module runs the checks in order and applies the policies; what each check looks for is in
`fluxora.data.checks`, how values are repaired in `fluxora.data.repairs`, the accounting and the
report in `fluxora.data.report`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fluxora.config import GateConfig
from fluxora.data import checks, repairs
from fluxora.data.checks import ALLOWED, Refused, check_policies
from fluxora.data.errors import GateFailedError
from fluxora.data.frames import (
    CHECK,
    REASON,
    REPAIRED,
    ROW,
    codes_of,
    extra_columns,
    first_series,
    freq_name,
    ns,
    step_ns,
)
from fluxora.data.report import IN_INPUT_ORDER, CheckResult, Ledger, Written, build_report, merge_ledgers
from fluxora.data.resample import to_model_resolution
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.sources import ISSUE

__all__ = ["CHECK", "REASON", "GateResult", "auto_model_freq", "run_batches", "run_gate", "split_rows"]

log = logging.getLogger("fluxora.data")


@dataclass
class GateResult:
    data: pd.DataFrame
    quarantine: pd.DataFrame
    repairs: pd.DataFrame
    report: dict[str, Any]


# the gate's steps in run order: a refusal's place in it decides which one a run over all the data
# would have met first (batches of series each stop at their own first)
STAGES = (
    "schema",
    "missing_series_id",
    "bad_timestamps",
    "non_numeric",
    "duplicates",
    "resolution",
    "irregular_steps",
    "non_finite",
    "negative",
    "outliers",
    "flat_lines",
    "no_weather",
    "missing_weather",
    "gaps",
    "too_short",
    "non_empty",
    "contract",
)

# a batch's outputs: validated rows, quarantined rows (with the input row number `ROW`), repairs
Sink = Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame], None]
Batch = tuple[pd.DataFrame, np.ndarray | None]  # rows of some series, and their input row numbers


def run_gate(
    raw: pd.DataFrame, cfg: GateConfig, model_freq: str = "h", resolution: str = "auto", batch_series: int = 0
) -> GateResult:
    """Apply every check to `raw`; return validated data, quarantined rows, repairs and the report.

    `batch_series` > 0 runs the checks on that many series at a time (`run_batches`); the result
    is the same. Raises GateFailedError (a DataValidationError) when a check with policy `fail`
    finds rows, when the data's structure is unusable, or when no row passes.
    """
    outs: list[pd.DataFrame] = []
    quarantined: list[pd.DataFrame] = []
    repaired: list[pd.DataFrame] = []

    def collect(out: pd.DataFrame, quarantine: pd.DataFrame, repairs: pd.DataFrame) -> None:
        for parts, frame in ((outs, out), (quarantined, quarantine), (repaired, repairs)):
            if not parts or not frame.empty:  # the first frame even when empty: the columns
                parts[:] = [p for p in parts if not p.empty] + [frame]

    batches: list[Batch] = [(raw.iloc[rows], rows) for rows in split_rows(raw, batch_series)]
    series_in = int(raw[SERIES_ID].nunique()) if SERIES_ID in raw else 0
    report = run_batches(batches or [(raw, None)], cfg, model_freq, resolution, len(raw), series_in, collect)
    quarantine = pd.concat(quarantined, ignore_index=True).sort_values(ROW, kind="stable")
    repairs = pd.concat(repaired, ignore_index=True)
    if len(repaired) > 1:  # one run lists the repairs check by check, each in series order
        order = np.argsort(repairs[CHECK].map(STAGES.index).to_numpy(), kind="stable")
        repairs = repairs.iloc[order].reset_index(drop=True)
    return GateResult(
        pd.concat(outs, ignore_index=True), quarantine.drop(columns=[ROW]).reset_index(drop=True), repairs, report
    )


def split_rows(raw: pd.DataFrame, batch_series: int) -> list[np.ndarray]:
    """Row numbers of each batch of `batch_series` series (in series order, rows in input order);
    [] for one batch of everything. Rows without a usable series id come first, on their own."""
    if batch_series <= 0 or SERIES_ID not in raw or raw.empty:
        return []
    ids = raw[SERIES_ID]
    null = ids.isna().to_numpy()
    text = ids.astype(str).to_numpy(dtype=object)
    names = sorted(set(text[~null]))
    blank = [n for n in names if not n.strip()]
    named = [n for n in names if n.strip()]
    if len(named) <= batch_series and not blank and not null.any():
        return []
    number = {name: i // batch_series + 1 for i, name in enumerate(named)} | dict.fromkeys(blank, 0)
    which = np.array([0 if no else number[t] for t, no in zip(text, null, strict=True)], dtype=np.int64)
    return [rows for b in range(which.max() + 1) if (rows := np.flatnonzero(which == b)).size]


def run_batches(
    batches: Iterable[Batch],
    cfg: GateConfig,
    model_freq: str,
    resolution: str,
    rows_in: int,
    series_in: int,
    sink: Sink,
) -> dict[str, Any]:
    """The gate over `batches` of whole series (in series order); returns the report.

    Each batch is checked on its own and its outputs go to `sink` as soon as it is done, so
    memory holds one batch. Every check looks within a series, so the outputs are those of one
    run over all the data; the counts are summed, and a refusal is the one that run would have
    met first (the earliest step any batch refused at, counted over all batches).
    """
    check_policies(cfg)
    if model_freq == "auto":
        batches = list(batches)
        model_freq = auto_model_freq([raw for raw, _ in batches], resolution)
    template = _ledger(cfg, rows_in, step_ns(model_freq))
    template.series_in = series_in
    ledgers: list[Ledger] = []
    refusals: list[tuple[tuple[int, int], int, Refused]] = []
    written = Written()
    rows_out = rows_quarantined = rows_repaired = rows_filled = 0
    for number, (raw, rows) in enumerate(batches):
        ledger = _ledger(cfg, len(raw), template.model_step)
        ledgers.append(ledger)
        try:
            done = _run(raw, rows, cfg, resolution, ledger)
        except Refused as exc:
            refusals.append(((STAGES.index(ledger.stage), int(exc.parts.get("order", 0))), number, exc))
            continue
        finally:
            quarantine = ledger.quarantine_frame(raw, keep_row=True)
            repairs = ledger.repairs_frame()
            ledger.quarantined, ledger.repairs = [], []  # written below; only the counts stay
        if refusals:
            continue  # the gate fails: nothing is written, the other batches only count
        out = done.out if done.out is not None else _no_rows(raw)
        sink(out, quarantine, repairs)
        written += Written.of(out) if done.out is not None else Written()
        rows_out += done.rows_out
        rows_quarantined += len(quarantine)
        rows_repaired += done.rows_repaired
        rows_filled += done.rows_filled
        del raw, rows, done, out, quarantine, repairs  # before the next batch is read: memory holds one
    if refusals:
        _refuse(template, ledgers, refusals)
    ledger = merge_ledgers(ledgers, template)
    if written.rows == 0:
        _refuse(template, ledgers, [((STAGES.index("non_empty"), 0), 0, Refused("non_empty", ledger.nothing_left()))])
    if rows_out + rows_quarantined != ledger.rows_in:  # the gate's own invariant; a bug if broken
        counts = f"{ledger.rows_in} in, {rows_out} out, {rows_quarantined} quarantined"
        raise AssertionError(f"row accounting broken: {counts}")
    count, _ = ledger.load_only
    if count and cfg.no_weather == "load_only":
        log.warning("%s: forecast from load and calendar only (data.gate.no_weather=load_only)", _load_only(ledger))
    return build_report(ledger, "passed", None, rows_out, rows_quarantined, rows_repaired, rows_filled, written)


def auto_model_freq(frames: Iterable[pd.DataFrame], resolution: str = "auto") -> str:
    """`data.freq: auto`: the data's own resolution, the coarsest series step when they differ
    (warned, naming `data.freq`); hourly where no step can be told (a too-short series, a step
    that is not whole minutes dividing an hour: the resolution check then says what is wrong)."""
    from fluxora.data.resolution import Resolution

    if resolution != "auto":
        return resolution
    found: set[int] = set()
    for raw in frames:
        if SERIES_ID not in raw or TIMESTAMP not in raw or raw.empty:
            continue
        stamps = pd.to_datetime(raw[TIMESTAMP], utc=True, errors="coerce")
        frame = pd.DataFrame({"s": raw[SERIES_ID].astype(str).to_numpy(), "t": stamps.to_numpy()}).dropna()
        frame = frame.drop_duplicates().sort_values(["s", "t"], kind="stable")
        diffs = frame.groupby("s", sort=False)["t"].diff().dropna()
        if diffs.empty:
            continue
        medians = diffs.groupby(frame.loc[diffs.index, "s"]).median()
        found.update(int(v.value) for v in medians if v.value > 0)
    if not found:
        return "h"
    coarsest = max(found)
    try:
        name = Resolution(coarsest).name
    except ValueError:
        return "h"  # not a model resolution: the checks refuse or average it as before
    if len(found) > 1:
        names = ", ".join(sorted({freq_name(step) for step in found}, key=pd.Timedelta))
        log.warning(
            "series have different resolutions (%s): modelled at the coarsest, %s (set data.freq to choose)",
            names,
            name,
        )
    return name


def _ledger(cfg: GateConfig, rows_in: int, model_step: int) -> Ledger:
    return Ledger(
        rows_in=rows_in,
        series_in=0,
        model_step=model_step,
        checks={name: CheckResult(getattr(cfg, name)) for name in ALLOWED},
    )


def _no_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """An empty validated table with the output columns (a batch whose rows were all quarantined)."""
    extras = extra_columns(raw)
    columns = {SERIES_ID: pd.Series(dtype=object), TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]")}
    return pd.DataFrame(columns | {c: pd.Series(dtype="float64") for c in (LOAD, TEMPERATURE, *extras)})


def _refuse(template: Ledger, ledgers: list[Ledger], refusals: list[tuple[tuple[int, int], int, Refused]]) -> None:
    """Raise the refusal a run over all the data would have met first, its counts over all batches."""
    first_key = min(key for key, _, _ in refusals)
    at_first = [(number, exc) for key, number, exc in refusals if key == first_key]
    stage = STAGES[first_key[0]]
    if stage in IN_INPUT_ORDER:  # these checks see rows in input order: the first row wins
        refused = min(at_first, key=lambda item: (item[1].first_row or 0, item[0]))[1]
    else:  # the others see series in order: the first batch wins
        refused = at_first[0][1]
    upto = sum(1 for name in ALLOWED if STAGES.index(name) <= first_key[0])
    ledger = merge_ledgers(ledgers, template, upto)
    if first_key[0] <= STAGES.index("resolution"):
        ledger.steps = {}  # not yet detected when the gate stopped
    message, series_id = _restate(refused, [exc for _, exc in at_first], ledger)
    failure = {"check": refused.check, "message": message, "series_id": series_id}
    report = build_report(ledger, "failed", failure)
    raise GateFailedError(refused.check, message, report, series_id=series_id)


def _restate(first: Refused, same: list[Refused], ledger: Ledger) -> tuple[str, str | None]:
    """`first`'s message with the counts of all batches that refused at the same step."""
    kind = first.parts.get("kind")
    if kind == "rows":
        found = ledger.checks[first.check].found
        return f"{found} row(s): {first.parts['text']}, first at {first.parts['at']}", first.series_id
    if kind == "gaps":
        return f"{ledger.checks['gaps'].found} missing step(s), first before {first.parts['at']}", first.series_id
    if kind == "no_weather":
        what = _load_only(ledger)
        fix = "map data.columns.temperature or set data.gate.no_weather=load_only"
        return f"{what}; {fix}", ledger.load_only[1][0]
    if kind == "non_finite_after_repair":
        count = sum(int(r.parts["count"]) for r in same)
        column = first.parts["column"]
        what = f"'{column}' still has {count} non-finite value(s) after repair (nothing to interpolate from)"
        return what, first.series_id
    return first.message, first.series_id


def _load_only(ledger: Ledger) -> str:
    count, first = ledger.load_only
    example = ", ".join(first[:3]) + (", ..." if count > 3 else "")
    return f"{count} of {ledger.series_at_weather} series have no temperature at all ({example})"


@dataclass
class _Done:
    out: pd.DataFrame | None  # None: every row of the batch was quarantined
    rows_out: int = 0
    rows_repaired: int = 0
    rows_filled: int = 0


def _run(raw: pd.DataFrame, rows: np.ndarray | None, cfg: GateConfig, resolution: str, ledger: Ledger) -> _Done:
    extras = extra_columns(raw)
    df = checks.working_frame(raw, extras, rows)
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
    ledger.stage = "resolution"
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
    ledger.stage = "gaps"
    df = _gaps(ledger, cfg, df, step_by_code, extras)
    short = checks.too_short(df, step_by_code, cfg.min_series_days)
    reason = f"series covers less than {cfg.min_series_days:g} days of history (data.gate.min_series_days)"
    df = _apply(ledger, "too_short", df, short, reason)
    if df.empty:
        return _Done(None)  # whether any row passed is decided over all batches
    ledger.stage = "contract"
    return _result(ledger, df, extras)


def _result(ledger: Ledger, df: pd.DataFrame, extras: list[str]) -> _Done:
    """The validated rows at model resolution and the counts (quarantine and repairs: the ledger's)."""
    rows_out = int(df[ROW].ge(0).sum())
    rows_filled = int(df[ROW].lt(0).sum())
    rows_repaired = int((df[REPAIRED] & df[ROW].ge(0)).sum())
    quarantined = sum(len(part) for part in ledger.quarantined)
    if rows_out + quarantined != ledger.rows_in:  # the gate's own invariant; a bug if broken
        counts = f"{ledger.rows_in} in, {rows_out} out, {quarantined} quarantined"
        raise AssertionError(f"row accounting broken: {counts}")
    out = to_model_resolution(df.drop(columns=[ROW, ISSUE, REPAIRED]), ledger.steps, ledger.model_step, extras)
    checks.contract(out, ledger.model_step)
    return _Done(out, rows_out, rows_repaired, rows_filled)


# -- policies -----------------------------------------------------------------------------------
def _apply(
    ledger: Ledger, check: str, df: pd.DataFrame, mask: np.ndarray, reason: Any, column: str | None = None
) -> pd.DataFrame:
    """Apply `check`'s policy to the rows it flagged in `mask` (`column`: what `repair` fixes)."""
    ledger.stage = check
    mask = np.asarray(mask, dtype=bool)
    found = ledger.found(check, df, mask)
    if not found:
        return df
    policy = ledger.checks[check].policy
    if policy == "fail":
        where = np.flatnonzero(mask)[0]
        text = str(reason.iat[where]) if isinstance(reason, pd.Series) else str(reason)
        at = str(df[TIMESTAMP].iat[where])
        raise Refused(
            check,
            f"{found} row(s): {text}, first at {at}",
            series_id=str(df[SERIES_ID].iat[where]),
            parts={"kind": "rows", "text": text, "at": at},
            first_row=int(df[ROW].to_numpy()[where]),
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
    ledger.stage = "no_weather"
    ledger.series_at_weather = int(df[SERIES_ID].nunique())
    load_only = checks.no_weather(df)
    if load_only.any():
        df = _no_weather(ledger, cfg, df, load_only)
        load_only = checks.no_weather(df)
    bad = checks.missing_weather(df, load_only)
    return _apply(ledger, "missing_weather", df, bad, "temperature missing", column=TEMPERATURE)


def _no_weather(ledger: Ledger, cfg: GateConfig, df: pd.DataFrame, load_only: np.ndarray) -> pd.DataFrame:
    ledger.found("no_weather", df, load_only)
    series = df.loc[load_only, SERIES_ID].astype(str).unique()
    ledger.load_only = (len(series), [str(s) for s in series[:3]])
    if cfg.no_weather == "fail":
        what = f"{_load_only(ledger)}; map data.columns.temperature or set data.gate.no_weather=load_only"
        raise Refused("no_weather", what, series_id=str(series[0]), parts={"kind": "no_weather"})
    if cfg.no_weather == "quarantine":
        return ledger.quarantine(df, "no_weather", load_only, "series has no temperature at all")
    return df  # load_only: one warning for all batches (`run_batches`)


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
        at = str(df[TIMESTAMP].iat[where])
        raise Refused(
            "gaps",
            f"{result.found} missing step(s), first before {at}",
            series_id=str(df[SERIES_ID].iat[where]),
            parts={"kind": "gaps", "at": at},
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
