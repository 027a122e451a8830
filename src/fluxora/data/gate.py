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

Accounting: `rows_in` (raw rows) = `rows_out` (input rows that passed, repaired or not) +
`rows_quarantined`, always; inserted gap rows are `rows_filled` and never counted as input.
Finer-than-model data (15/30 min) is then averaged to the model resolution (`data.freq`):
load is a mean power (e.g. MW), so the hourly value is the mean of its quarter-hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fluxora.config import GateConfig
from fluxora.data.errors import GateFailedError
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.sources import ISSUE
from fluxora.errors import ConfigError

CHECK = "check"
REASON = "reason"
_ROW = "_row"
_REPAIRED = "_repaired"
ALLOWED: dict[str, tuple[str, ...]] = {
    "bad_timestamps": ("fail", "quarantine"),
    "non_numeric": ("fail", "quarantine"),
    "duplicates": ("fail", "quarantine"),
    "irregular_steps": ("fail", "quarantine"),
    "non_finite": ("fail", "quarantine", "repair"),
    "negative": ("fail", "quarantine", "repair", "warn"),
    "outliers": ("fail", "quarantine", "repair", "warn"),
    "flat_lines": ("fail", "quarantine", "warn"),
    "missing_weather": ("fail", "quarantine", "repair"),
    "gaps": ("fail", "quarantine", "repair"),
    "too_short": ("fail", "quarantine", "warn"),
}


@dataclass
class CheckResult:
    policy: str
    found: int = 0
    rows_quarantined: int = 0
    rows_repaired: int = 0
    rows_filled: int = 0
    series: list[str] = field(default_factory=list)  # up to 10 affected series, for the report


@dataclass
class GateResult:
    data: pd.DataFrame
    quarantine: pd.DataFrame
    repairs: pd.DataFrame
    report: dict[str, Any]


def check_policies(cfg: GateConfig) -> None:
    """Raise ConfigError for a policy a check does not support."""
    for check, allowed in ALLOWED.items():
        value = getattr(cfg, check)
        if value not in allowed:
            raise ConfigError(f"invalid configuration: data.gate.{check}: {value!r} is not one of {', '.join(allowed)}")


def run_gate(raw: pd.DataFrame, cfg: GateConfig, model_freq: str = "h", resolution: str = "auto") -> GateResult:
    """Apply every check to `raw`; return validated data, quarantined rows, repairs and the report.

    Raises GateFailedError (a DataValidationError) when a check with policy `fail` finds rows,
    when the data's structure is unusable, or when no row passes.
    """
    check_policies(cfg)
    return _Gate(raw, cfg, model_freq, resolution).run()


class _Gate:
    def __init__(self, raw: pd.DataFrame, cfg: GateConfig, model_freq: str, resolution: str) -> None:
        self.cfg = cfg
        self.model_step = _step_ns(model_freq)
        self.resolution = resolution
        self.rows_in = len(raw)
        self.series_in = int(raw[SERIES_ID].nunique()) if SERIES_ID in raw else 0
        self.results: dict[str, CheckResult] = {name: CheckResult(getattr(cfg, name)) for name in ALLOWED}
        self.quarantined: list[pd.DataFrame] = []
        self.repairs: list[pd.DataFrame] = []
        self.raw = raw
        self.steps: dict[str, int] = {}
        self.extras = [c for c in raw.columns if c not in (SERIES_ID, TIMESTAMP, LOAD, TEMPERATURE, ISSUE)]
        self.rows_repaired = 0
        self.names = np.array([], dtype=object)
        self.step_by_code = np.array([], dtype="int64")

    # -- driver ---------------------------------------------------------------------------------
    def run(self) -> GateResult:
        df = self._structure(self.raw)
        df = self._row_issues(df)
        df = self._sort_and_duplicates(df)
        df = self._resolution(df)
        df = self._value_checks(df)
        df = self._flat_lines(df)
        df = self._missing_weather(df)
        df = self._gaps(df)
        df = self._too_short(df)
        if df.empty:
            self._fail("non_empty", self._nothing_left())
        rows_out = int(df[_ROW].ge(0).sum())
        rows_filled = int(df[_ROW].lt(0).sum())
        self.rows_repaired = int((df[_REPAIRED] & df[_ROW].ge(0)).sum())
        quarantine = self._quarantine_frame()
        if rows_out + len(quarantine) != self.rows_in:  # the gate's own invariant; a bug if broken
            counts = f"{self.rows_in} in, {rows_out} out, {len(quarantine)} quarantined"
            raise AssertionError(f"row accounting broken: {counts}")
        repaired_rows = self._repairs_frame()
        out = self._to_model_resolution(df.drop(columns=[_ROW, ISSUE, _REPAIRED]))
        self._contract(out)
        report = self._report("passed", None, rows_out, len(quarantine), repaired_rows, rows_filled, out)
        return GateResult(out, quarantine, repaired_rows, report)

    # -- checks ---------------------------------------------------------------------------------
    def _structure(self, raw: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in (SERIES_ID, TIMESTAMP, LOAD) if c not in raw.columns]
        if missing:
            self._fail("columns", f"missing required columns {missing}; got {list(raw.columns)}")
        if raw.empty:
            self._fail("non_empty", "the data has no rows")
        df = raw.copy(deep=False)  # columns are replaced, never modified in place
        if TEMPERATURE not in df.columns:
            df[TEMPERATURE] = np.nan
        if ISSUE not in df.columns:
            df[ISSUE] = None
        if not isinstance(df[TIMESTAMP].dtype, pd.DatetimeTZDtype):
            self._fail("timestamp_utc", f"'{TIMESTAMP}' must be timezone-aware, got {df[TIMESTAMP].dtype}")
        df[TIMESTAMP] = df[TIMESTAMP].dt.tz_convert("UTC")
        df[SERIES_ID] = _as_category(df[SERIES_ID])  # integer codes make sorting and grouping cheap
        self.names = np.asarray(df[SERIES_ID].cat.categories, dtype=object)
        for col in (LOAD, TEMPERATURE, *self.extras):
            if not pd.api.types.is_numeric_dtype(df[col]):
                self._fail("numeric", f"column '{col}' must be numeric, got {df[col].dtype}")
            df[col] = df[col].astype("float64")
        df[_ROW] = np.arange(len(df), dtype=np.int64)
        df[_REPAIRED] = False
        return df

    def _row_issues(self, df: pd.DataFrame) -> pd.DataFrame:
        bad_ts = df[TIMESTAMP].isna().to_numpy()
        if bad_ts.any():
            df = self._apply("bad_timestamps", df, bad_ts, df[ISSUE].fillna("missing timestamp"))
        issue = df[ISSUE]
        has = issue.notna().to_numpy()
        non_numeric = np.zeros(len(df), dtype=bool)
        if has.any():
            non_numeric[has] = issue[has].astype(str).str.startswith("non-numeric").to_numpy()
        return self._apply("non_numeric", df, non_numeric, issue)

    def _sort_and_duplicates(self, df: pd.DataFrame) -> pd.DataFrame:
        codes = _codes(df)
        ts = _ns(df[TIMESTAMP])
        step_code, step_ts = np.diff(codes), np.diff(ts)
        if not ((step_code > 0) | ((step_code == 0) & (step_ts >= 0))).all():  # exports are mostly sorted already
            order = np.lexsort((df[_ROW].to_numpy(), ts, codes))
            df = df.iloc[order].reset_index(drop=True)
            codes, ts = codes[order], ts[order]
        dup = np.zeros(len(df), dtype=bool)
        dup[1:] = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
        return self._apply("duplicates", df, dup, "duplicate (series_id, timestamp); the first row is kept")

    def _resolution(self, df: pd.DataFrame) -> pd.DataFrame:
        """Detect each series' step (median spacing) unless configured; quarantine rows off its grid."""
        ts = _ns(df[TIMESTAMP])
        same = _same_series(df)
        diffs = np.where(same, np.diff(ts, prepend=ts[:1]), np.nan)
        codes = _codes(df)
        if self.resolution != "auto":
            step = pd.Series(float(_step_ns(self.resolution)), index=np.unique(codes))
        else:
            step = pd.Series(diffs).groupby(codes).median().fillna(float(self.model_step))
        step_by_code = np.full(len(self.names), self.model_step, dtype="int64")
        step_by_code[step.index.to_numpy()] = step.round().to_numpy(dtype="int64")
        for code in step.index:
            value = int(step_by_code[code])
            if value <= 0 or value > self.model_step or self.model_step % value != 0:
                self._fail(
                    "resolution",
                    f"step {pd.Timedelta(value)} does not divide the model resolution "
                    f"{pd.Timedelta(self.model_step)}; set data.freq or data.resolution",
                    series_id=str(self.names[code]),
                )
        self.step_by_code = step_by_code
        self.steps = {str(self.names[c]): int(step_by_code[c]) for c in step.index}
        offset = ts % step_by_code[codes]
        if not offset.any():  # every row on its grid (the usual case): skip the per-series anchor
            return df
        anchor = pd.Series(offset).groupby(codes).transform("median").to_numpy()
        irregular = offset != anchor
        return self._apply("irregular_steps", df, irregular, "timestamp off the series' regular grid")

    def _value_checks(self, df: pd.DataFrame) -> pd.DataFrame:
        load = df[LOAD].to_numpy()
        df = self._apply("non_finite", df, ~np.isfinite(load), "load is NaN or infinite", column=LOAD)
        df = self._apply("negative", df, df[LOAD].to_numpy() < 0, "negative load", column=LOAD)
        return self._apply("outliers", df, self._spikes(df), "load spike (robust z of the step change)", column=LOAD)

    def _spikes(self, df: pd.DataFrame) -> np.ndarray:
        """A spike jumps away and straight back: both step changes are huge and of opposite sign."""
        if len(df) < 3:
            return np.zeros(len(df), dtype=bool)
        load = df[LOAD].to_numpy()
        same = _same_series(df)
        d = np.where(same, np.diff(load, prepend=load[:1]), np.nan)
        keys = _codes(df)
        ds = pd.Series(d)
        med = ds.groupby(keys).transform("median").to_numpy()
        mad = pd.Series(np.abs(d - med)).groupby(keys).transform("median").to_numpy() * 1.4826
        scale = np.where(mad > 0, mad, np.nan)
        z = (d - med) / scale
        z_next = np.append(z[1:], np.nan)
        thr = self.cfg.outlier_threshold
        with np.errstate(invalid="ignore"):
            return (np.abs(z) > thr) & (np.abs(z_next) > thr) & (np.sign(z) != np.sign(z_next))

    def _flat_lines(self, df: pd.DataFrame) -> pd.DataFrame:
        n = self.cfg.flat_line_steps
        if n < 2 or df.empty:
            return df
        load = df[LOAD].to_numpy()
        same = _same_series(df)
        start = ~same | np.append(True, load[1:] != load[:-1])
        run_id = np.cumsum(start)
        run_len = np.bincount(run_id)[run_id]
        # the first value of a stuck stretch is a real reading; the repeats after it are not
        flat = (run_len >= n) & ~start
        return self._apply("flat_lines", df, flat, f"load repeats the same value for {n}+ steps (stuck meter?)")

    def _missing_weather(self, df: pd.DataFrame) -> pd.DataFrame:
        temp = df[TEMPERATURE].to_numpy()
        bad = ~np.isfinite(temp)
        if not bad.any():
            return df
        none_at_all = pd.Series(~bad).groupby(_codes(df)).transform("any").to_numpy() == 0
        if none_at_all.all():
            self._fail("missing_weather", "no temperature values at all; map data.columns.temperature")
        policy = self.cfg.missing_weather
        if policy == "repair" and none_at_all.any():
            self.results["missing_weather"].found += int(none_at_all.sum())
            # nothing to interpolate from: the whole series goes to quarantine
            df = self._quarantine(df, "missing_weather", none_at_all, "series has no temperature at all")
            bad = ~np.isfinite(df[TEMPERATURE].to_numpy())
        return self._apply("missing_weather", df, bad, "temperature missing", column=TEMPERATURE)

    def _gaps(self, df: pd.DataFrame) -> pd.DataFrame:
        if df.empty:
            return df
        ts = _ns(df[TIMESTAMP])
        step = self.step_by_code[_codes(df)]
        same = _same_series(df)
        missing = np.where(same, np.diff(ts, prepend=ts[:1]) // step - 1, 0)  # missing steps before each row
        has_gap = missing > 0
        result = self.results["gaps"]
        result.found = int(missing[has_gap].sum())
        if not has_gap.any():
            return df
        result.series = _first_series(df, has_gap)
        policy = self.cfg.gaps
        if policy == "fail":
            where = np.flatnonzero(has_gap)[0]
            self._fail(
                "gaps",
                f"{result.found} missing step(s), first before {df[TIMESTAMP].iat[where]}",
                series_id=str(df[SERIES_ID].iat[where]),
            )
        if policy == "quarantine":
            whole = pd.Series(has_gap).groupby(_codes(df)).transform("any").to_numpy()
            return self._quarantine(df, "gaps", whole, "series has gaps (data.gate.gaps=quarantine)")
        # repair: keep the part after the last gap too long to fill, fill the short gaps in it
        too_long = missing > self.cfg.max_fill_steps
        if too_long.any():
            last_cut = pd.Series(np.where(too_long, ts, np.iinfo(np.int64).min))
            older = ts < last_cut.groupby(_codes(df)).transform("max").to_numpy()
            df = self._quarantine(df, "gaps", older, f"before a gap longer than {self.cfg.max_fill_steps} steps")
            keep = ~older
            ts, step, missing = ts[keep], step[keep], missing[keep]
            missing = np.where(missing > self.cfg.max_fill_steps, 0, missing)
        return self._fill(df, ts, step, missing)

    def _fill(self, df: pd.DataFrame, ts: np.ndarray, step: np.ndarray, missing: np.ndarray) -> pd.DataFrame:
        """Insert linearly interpolated rows for short gaps (flagged in the repairs file)."""
        after = np.flatnonzero(missing > 0)
        if after.size == 0:
            return df
        k = missing[after]
        rep = np.repeat(after, k)
        j = np.arange(rep.size) - np.repeat(np.cumsum(k) - k, k) + 1  # 1..k within each gap
        frac = j / np.repeat(k + 1, k)
        new: dict[str, Any] = {SERIES_ID: _from_codes(_codes(df)[rep], df)}
        new_ts = ts[rep - 1] + j * step[rep]
        new[TIMESTAMP] = pd.DatetimeIndex(new_ts.view("datetime64[ns]")).tz_localize("UTC")
        for col in (LOAD, TEMPERATURE, *self.extras):
            values = df[col].to_numpy()
            new[col] = values[rep - 1] + (values[rep] - values[rep - 1]) * frac
        filled = pd.DataFrame(new)
        filled[ISSUE] = None
        filled[_ROW] = -1
        filled[_REPAIRED] = False
        self.results["gaps"].rows_filled = len(filled)
        self.repairs.append(
            pd.DataFrame(
                {
                    SERIES_ID: filled[SERIES_ID],
                    TIMESTAMP: filled[TIMESTAMP],
                    CHECK: "gaps",
                    "column": LOAD,
                    "original": np.nan,
                }
            )
        )
        out = pd.concat([df, filled[df.columns]], ignore_index=True)
        order = np.lexsort((_ns(out[TIMESTAMP]), _codes(out)))
        return out.iloc[order].reset_index(drop=True)

    def _too_short(self, df: pd.DataFrame) -> pd.DataFrame:
        if df.empty:
            return df
        codes = _codes(df)
        ts = pd.Series(_ns(df[TIMESTAMP]))
        bounds = ts.groupby(codes).agg(["min", "max"])
        span = bounds["max"] - bounds["min"] + self.step_by_code[bounds.index.to_numpy()]
        days = span / 86_400e9
        short = days[days < self.cfg.min_series_days].index.to_numpy()
        mask = np.isin(codes, short)
        reason = f"series covers less than {self.cfg.min_series_days:g} days of history (data.gate.min_series_days)"
        return self._apply("too_short", df, mask, reason)

    # -- policies -------------------------------------------------------------------------------
    def _apply(
        self, check: str, df: pd.DataFrame, mask: np.ndarray, reason: Any, column: str | None = None
    ) -> pd.DataFrame:
        mask = np.asarray(mask, dtype=bool)
        result = self.results[check]
        found = int(mask.sum())
        result.found += found
        if not found:
            return df
        result.series = result.series or _first_series(df, mask)
        if result.policy == "fail":
            where = np.flatnonzero(mask)[0]
            text = str(reason.iat[where]) if isinstance(reason, pd.Series) else str(reason)
            self._fail(
                check,
                f"{found} row(s): {text}, first at {df[TIMESTAMP].iat[where]}",
                series_id=str(df[SERIES_ID].iat[where]),
            )
        if result.policy == "warn":
            return df
        if result.policy == "repair":
            assert column is not None
            return self._interpolate(df, check, mask, column)
        return self._quarantine(df, check, mask, reason)

    def _quarantine(self, df: pd.DataFrame, check: str, mask: np.ndarray, reason: Any) -> pd.DataFrame:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return df
        moved = df.loc[mask]
        original = moved[moved[_ROW] >= 0]  # inserted gap rows are not input rows: they just vanish again
        part = original.copy()
        part[CHECK] = check
        part[REASON] = reason.loc[original.index].astype(str) if isinstance(reason, pd.Series) else reason
        self.quarantined.append(part)
        self.results[check].rows_quarantined += len(original)
        return df.loc[~mask].reset_index(drop=True)

    def _interpolate(self, df: pd.DataFrame, check: str, mask: np.ndarray, column: str) -> pd.DataFrame:
        """Replace flagged values by linear interpolation in time within the series."""
        df = df.copy()
        self.repairs.append(
            pd.DataFrame(
                {
                    SERIES_ID: df.loc[mask, SERIES_ID],
                    TIMESTAMP: df.loc[mask, TIMESTAMP],
                    CHECK: check,
                    "column": column,
                    "original": df.loc[mask, column],
                }
            )
        )
        values = df[column].to_numpy(copy=True)
        values[mask] = np.nan
        ts = _ns(df[TIMESTAMP])
        starts = np.flatnonzero(~_same_series(df))
        ends = np.append(starts[1:], len(df))
        number = np.cumsum(~_same_series(df)) - 1  # series number of each row (data sorted by series)
        for n in np.unique(number[mask]):
            rows = np.arange(starts[n], ends[n])
            ok = np.isfinite(values[rows])
            if ok.any():  # else left NaN: the final contract check refuses it
                values[rows[~ok]] = np.interp(ts[rows[~ok]], ts[rows[ok]], values[rows[ok]])
        df[column] = values
        df.loc[mask, _REPAIRED] = True
        self.results[check].rows_repaired += int(mask.sum())
        return df

    def _nothing_left(self) -> str:
        """Why no row passed: the check that quarantined most rows, with its reason."""
        worst = max(self.quarantined, key=len, default=None)
        if worst is None:
            return "no rows passed the gate"
        check = str(worst[CHECK].iat[0])
        total = self.results[check].rows_quarantined
        return f"no rows passed the gate; most ({total}) quarantined by {check}: {worst[REASON].iat[0]}"

    def _fail(self, check: str, message: str, series_id: str | None = None) -> None:
        report = self._report(
            "failed", {"check": check, "message": message, "series_id": series_id}, None, None, None, None, None
        )
        raise GateFailedError(check, message, report, series_id=series_id)

    # -- outputs --------------------------------------------------------------------------------
    def _quarantine_frame(self) -> pd.DataFrame:
        if not self.quarantined:
            cols = [c for c in self.raw.columns] + [CHECK, REASON]
            return self.raw.iloc[0:0].assign(**{CHECK: pd.Series(dtype=str), REASON: pd.Series(dtype=str)})[cols]
        out = pd.concat(self.quarantined, ignore_index=True).sort_values(_ROW, kind="stable")
        out[SERIES_ID] = out[SERIES_ID].astype(str)
        return out.drop(columns=[_ROW, _REPAIRED]).reset_index(drop=True)

    def _repairs_frame(self) -> pd.DataFrame:
        cols = [SERIES_ID, TIMESTAMP, CHECK, "column", "original"]
        if not self.repairs:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        out = pd.concat(self.repairs, ignore_index=True)[cols]
        return out.assign(**{SERIES_ID: out[SERIES_ID].astype(str)})

    def _contract(self, out: pd.DataFrame) -> None:
        """What downstream relies on: finite values and one regular model step per series."""
        for col in (LOAD, TEMPERATURE):
            bad = ~np.isfinite(out[col].to_numpy())
            if bad.any():
                where = np.flatnonzero(bad)[0]
                self._fail(
                    "contract",
                    f"'{col}' still has {int(bad.sum())} non-finite value(s) after repair "
                    f"(nothing to interpolate from)",
                    series_id=str(out[SERIES_ID].iat[where]),
                )
        ts = _ns(out[TIMESTAMP])
        same = _same_series(out)
        irregular = same & (np.diff(ts, prepend=ts[:1]) != self.model_step)
        if irregular.any():
            where = np.flatnonzero(irregular)[0]
            self._fail(
                "contract",
                f"irregular step before {out[TIMESTAMP].iat[where]} after the gate",
                series_id=str(out[SERIES_ID].iat[where]),
            )

    def _to_model_resolution(self, df: pd.DataFrame) -> pd.DataFrame:
        """Average finer series (15/30 min) to the model step; coarser ones were refused earlier."""
        fine = [sid for sid, step in self.steps.items() if step < self.model_step]
        if fine:
            is_fine = df[SERIES_ID].isin(fine).to_numpy()
            part = df.loc[is_fine]
            bucket = part[TIMESTAMP].dt.floor(pd.Timedelta(self.model_step))
            values = [LOAD, TEMPERATURE, *self.extras]
            agg = part[values].groupby([_codes(part), bucket.to_numpy()], sort=False).mean().reset_index()
            agg.columns = ["_code", TIMESTAMP, *values]
            agg[TIMESTAMP] = pd.to_datetime(agg[TIMESTAMP], utc=True)
            agg[SERIES_ID] = _from_codes(agg["_code"].to_numpy(), df)
            df = pd.concat([df.loc[~is_fine], agg[df.columns]], ignore_index=True)
            order = np.lexsort((_ns(df[TIMESTAMP]), _codes(df)))
            df = df.iloc[order].reset_index(drop=True)
        ids = np.asarray(df[SERIES_ID].cat.categories.astype(str), dtype=object)[_codes(df)]
        columns = {SERIES_ID: ids, TIMESTAMP: df[TIMESTAMP].array}
        return pd.DataFrame(columns | {c: df[c].to_numpy() for c in (LOAD, TEMPERATURE, *self.extras)})

    def _report(
        self,
        status: str,
        failure: dict[str, Any] | None,
        rows_out: int | None,
        rows_quarantined: int | None,
        repairs: pd.DataFrame | None,
        rows_filled: int | None,
        out: pd.DataFrame | None,
    ) -> dict[str, Any]:
        repaired = self.rows_repaired
        by_step: dict[str, int] = {}
        for step in self.steps.values():
            key = _freq_name(step)
            by_step[key] = by_step.get(key, 0) + 1
        return {
            "status": status,
            "rows_in": self.rows_in,
            "rows_out": rows_out,
            "rows_quarantined": rows_quarantined,
            "rows_repaired": repaired if status == "passed" else None,
            "rows_filled": rows_filled,
            "rows_written": None if out is None else len(out),
            "series_in": self.series_in,
            "series_out": None if out is None else int(out[SERIES_ID].nunique()),
            "model_resolution": _freq_name(self.model_step),
            "source_resolution": by_step,
            "start": None if out is None or out.empty else str(out[TIMESTAMP].min()),
            "end": None if out is None or out.empty else str(out[TIMESTAMP].max()),
            "failure": failure,
            "checks": {name: vars(r) for name, r in self.results.items()},
        }


def _ns(stamps: pd.Series) -> np.ndarray:
    """UTC instants as int64 nanoseconds."""
    return stamps.to_numpy(dtype="datetime64[ns]").view("int64")


def _as_category(ids: pd.Series) -> pd.Series:
    """Series ids as a categorical of strings, categories in string order (so code order = id order)."""
    cat = ids if isinstance(ids.dtype, pd.CategoricalDtype) else ids.astype("category")
    names = cat.cat.categories.astype(str)
    if not names.is_unique:  # e.g. 1 and "1": compare as text
        cat = ids.astype(str).astype("category")
        names = cat.cat.categories
    cat = cat.cat.rename_categories(list(names))
    return cat.cat.reorder_categories(sorted(names))


def _from_codes(codes: np.ndarray, like: pd.DataFrame) -> pd.Categorical:
    """Series ids from codes, with the categories of `like`."""
    return pd.Categorical.from_codes(codes, categories=like[SERIES_ID].cat.categories)


def _codes(df: pd.DataFrame) -> np.ndarray:
    return np.asarray(df[SERIES_ID].cat.codes.to_numpy(), dtype=np.int64)


def _same_series(df: pd.DataFrame) -> np.ndarray:
    """True where a row continues the series of the row before it (data sorted by series, time)."""
    ids = df[SERIES_ID]
    sid = _codes(df) if isinstance(ids.dtype, pd.CategoricalDtype) else ids.to_numpy()
    same = np.zeros(len(df), dtype=bool)
    same[1:] = sid[1:] == sid[:-1]
    return same


def _first_series(df: pd.DataFrame, mask: np.ndarray, limit: int = 10) -> list[str]:
    return [str(s) for s in pd.unique(df.loc[mask, SERIES_ID])[:limit]]


def _step_ns(freq: str) -> int:
    try:
        return int(pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        message = f"invalid configuration: not a fixed resolution: {freq!r} (use e.g. 15min, 30min, h)"
        raise ConfigError(message) from None


def _freq_name(step_ns: int) -> str:
    minutes = step_ns // 60_000_000_000
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}min"


def render_text(report: dict[str, Any]) -> str:
    """The human summary of a validation report."""
    lines = [
        f"Validation gate: {report['status'].upper()}",
        f"  rows in {report['rows_in']} = out {report['rows_out']} + quarantined {report['rows_quarantined']}"
        f"   (repaired {report['rows_repaired']}, gap rows filled {report['rows_filled']})",
        f"  series in {report['series_in']}, out {report['series_out']}; model resolution {report['model_resolution']},"
        f" source {report['source_resolution']}",
    ]
    if report["failure"]:
        f = report["failure"]
        where = f" (series {f['series_id']!r})" if f.get("series_id") else ""
        lines.append(f"  FAILED at [{f['check']}]{where}: {f['message']}")
    lines.append("  checks:")
    for name, r in report["checks"].items():
        detail = f"found {r['found']:>8}"
        if r["found"]:
            detail += f"  quarantined {r['rows_quarantined']}, repaired {r['rows_repaired']}, filled {r['rows_filled']}"
            if r["series"]:
                detail += f"  e.g. {', '.join(r['series'][:3])}"
        lines.append(f"    {name:<16} [{r['policy']:<10}] {detail}")
    return "\n".join(lines) + "\n"
