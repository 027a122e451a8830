"""The gate's accounting and its outputs: every row in is out, quarantined (with its check and
reason) or refused; every changed value is in the repairs file with the original.

`Ledger` keeps the counts while the gate runs; `build_report` turns it into the validation report
(`rows_in = rows_out + rows_quarantined`, inserted gap rows are `rows_filled`); `write_report`
writes the JSON and text report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fluxora.data import io
from fluxora.data.frames import CHECK, REASON, REPAIRED, ROW, freq_name
from fluxora.data.schema import SERIES_ID, TIMESTAMP
from fluxora.paths import VALIDATION_REPORT


@dataclass
class CheckResult:
    policy: str
    found: int = 0
    rows_quarantined: int = 0
    rows_repaired: int = 0
    rows_filled: int = 0
    series: list[str] = field(default_factory=list)  # up to 10 affected series, for the report


@dataclass
class Ledger:
    """What the gate has done so far: per-check counts, the rows moved out, the values changed."""

    rows_in: int
    series_in: int
    model_step: int
    checks: dict[str, CheckResult]  # in report order
    steps: dict[str, int] = field(default_factory=dict)  # each series' source step (ns), once detected
    quarantined: list[pd.DataFrame] = field(default_factory=list)
    repairs: list[pd.DataFrame] = field(default_factory=list)
    # what merging series batches needs (`merge_ledgers`): the input row each listed series was
    # first flagged at, each check's first quarantined row and reason, the series left when the
    # weather checks ran and the load-only ones among them (count, first three)
    series_rows: dict[str, list[int]] = field(default_factory=dict)
    first_quarantined: dict[str, tuple[int, str]] = field(default_factory=dict)
    series_at_weather: int = 0
    load_only: tuple[int, list[str]] = (0, [])
    stage: str = "schema"  # the gate step running (a refusal's place in the run order)

    def found(self, check: str, df: pd.DataFrame, mask: np.ndarray) -> int:
        """Count what `check` found; the first affected series are kept for the report."""
        result = self.checks[check]
        count = int(mask.sum())
        result.found += count
        if count and not result.series:
            first = df.loc[mask, [SERIES_ID, ROW]].drop_duplicates(SERIES_ID).head(10)
            result.series = [str(s) for s in first[SERIES_ID]]
            self.series_rows[check] = [int(r) for r in first[ROW]]
        return count

    def quarantine(self, df: pd.DataFrame, check: str, mask: np.ndarray, reason: Any) -> pd.DataFrame:
        """Move the rows in `mask` out of `df`, with the check and the reason (a text or one per row)."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return df
        moved = df.loc[mask]
        original = moved[moved[ROW] >= 0]  # inserted gap rows are not input rows: they just vanish again
        part = original.copy()
        part[CHECK] = check
        part[REASON] = reason.loc[original.index].astype(str) if isinstance(reason, pd.Series) else reason
        self.quarantined.append(part)
        if len(part) and check not in self.first_quarantined:
            self.first_quarantined[check] = (int(part[ROW].to_numpy()[0]), str(part[REASON].iat[0]))
        self.checks[check].rows_quarantined += len(original)
        return df.loc[~mask].reset_index(drop=True)

    def repaired(self, check: str, record: pd.DataFrame) -> None:
        """Values changed in place by `check` (one record row each)."""
        self.repairs.append(record)
        self.checks[check].rows_repaired += len(record)

    def filled(self, record: pd.DataFrame) -> None:
        """Rows inserted into gaps (one record row each)."""
        self.checks["gaps"].rows_filled = len(record)
        self.repairs.append(record)

    def nothing_left(self) -> str:
        """Why no row passed: the check that quarantined most rows (the first such), with its reason."""
        counts = [(r.rows_quarantined, name) for name, r in self.checks.items() if name in self.first_quarantined]
        if not counts:
            return "no rows passed the gate"
        total = max(n for n, _ in counts)
        check = next(name for n, name in counts if n == total)
        return f"no rows passed the gate; most ({total}) quarantined by {check}: {self.first_quarantined[check][1]}"

    def quarantine_frame(self, raw: pd.DataFrame, keep_row: bool = False) -> pd.DataFrame:
        """The quarantine file: the input rows moved out (input columns, in input order), check, reason.

        `keep_row`: keep the input row number column `ROW` (to merge batches in input order).
        """
        cols = [c for c in raw.columns] + ([ROW] if keep_row else []) + [CHECK, REASON]
        if not self.quarantined:
            empty = raw.iloc[0:0].assign(**{CHECK: pd.Series(dtype=str), REASON: pd.Series(dtype=str)})
            return empty.assign(**{ROW: pd.Series(dtype="int64")})[cols] if keep_row else empty[cols]
        out = pd.concat(self.quarantined, ignore_index=True).sort_values(ROW, kind="stable")
        out[SERIES_ID] = out[SERIES_ID].astype(str)
        return out.drop(columns=[REPAIRED] if keep_row else [ROW, REPAIRED]).reset_index(drop=True)

    def repairs_frame(self) -> pd.DataFrame:
        """The repairs file: series, timestamp, check, column and the original value."""
        cols = [SERIES_ID, TIMESTAMP, CHECK, "column", "original"]
        if not self.repairs:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        out = pd.concat(self.repairs, ignore_index=True)[cols]
        return out.assign(**{SERIES_ID: out[SERIES_ID].astype(str)})


@dataclass(frozen=True)
class Written:
    """What the validated table holds: rows, series, first and last timestamp (None when empty)."""

    rows: int = 0
    series: int = 0
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None

    @classmethod
    def of(cls, out: pd.DataFrame) -> Written:
        if out.empty:
            return cls(0, int(out[SERIES_ID].nunique()))
        return cls(len(out), int(out[SERIES_ID].nunique()), out[TIMESTAMP].min(), out[TIMESTAMP].max())

    def __add__(self, other: Written) -> Written:
        starts = [t for t in (self.start, other.start) if t is not None]
        ends = [t for t in (self.end, other.end) if t is not None]
        return Written(
            self.rows + other.rows,
            self.series + other.series,  # batches hold disjoint series
            min(starts) if starts else None,
            max(ends) if ends else None,
        )


def merge_ledgers(ledgers: list[Ledger], template: Ledger, upto: int | None = None) -> Ledger:
    """One ledger for all series batches (run in series order): counts summed, the first affected
    series kept in the order one run over all the data would list them.

    `template` holds the totals (rows_in, series_in, model step, policies); `upto`: only the
    first `upto` checks (in run order) count, the gate stopped there (None: all of them).
    """
    names = list(template.checks)
    keep = names if upto is None else names[:upto]
    merged = Ledger(template.rows_in, template.series_in, template.model_step, dict(template.checks))
    for name in names:
        result = CheckResult(template.checks[name].policy)
        merged.checks[name] = result
        if name not in keep:
            continue
        pairs: list[tuple[int, int, str]] = []  # (input row or batch number, position, series)
        for number, ledger in enumerate(ledgers):
            part = ledger.checks[name]
            result.found += part.found
            result.rows_quarantined += part.rows_quarantined
            result.rows_repaired += part.rows_repaired
            result.rows_filled += part.rows_filled
            rows = ledger.series_rows.get(name)
            for i, sid in enumerate(part.series):
                key = rows[i] if name in IN_INPUT_ORDER and rows is not None else number
                pairs.append((key, i, sid))
            if name in ledger.first_quarantined:
                row, reason = ledger.first_quarantined[name]
                if name not in merged.first_quarantined or row < merged.first_quarantined[name][0]:
                    merged.first_quarantined[name] = (row, reason)
        result.series = [sid for _, _, sid in sorted(pairs)[:10]]
    for ledger in ledgers:
        merged.steps.update(ledger.steps)
        merged.series_at_weather += ledger.series_at_weather
        count, first = merged.load_only
        merged.load_only = (count + ledger.load_only[0], (first + ledger.load_only[1])[:3])
    return merged


# the checks that run before the gate sorts rows by series: they see (and list) rows in input order
IN_INPUT_ORDER = ("missing_series_id", "bad_timestamps", "non_numeric")


def build_report(
    ledger: Ledger,
    status: str,
    failure: dict[str, Any] | None,
    rows_out: int | None = None,
    rows_quarantined: int | None = None,
    rows_repaired: int | None = None,
    rows_filled: int | None = None,
    out: Written | None = None,
) -> dict[str, Any]:
    """The validation report; a failed one has only what was known when the gate stopped."""
    by_step: dict[str, int] = {}
    for step in ledger.steps.values():
        key = freq_name(step)
        by_step[key] = by_step.get(key, 0) + 1
    return {
        "status": status,
        "rows_in": ledger.rows_in,
        "rows_out": rows_out,
        "rows_quarantined": rows_quarantined,
        "rows_repaired": rows_repaired,
        "rows_filled": rows_filled,
        "rows_written": None if out is None else out.rows,
        "series_in": ledger.series_in,
        "series_out": None if out is None else out.series,
        "model_resolution": freq_name(ledger.model_step),
        "source_resolution": by_step,
        "start": None if out is None or out.start is None else str(out.start),
        "end": None if out is None or out.end is None else str(out.end),
        "failure": failure,
        "checks": {name: vars(r) for name, r in ledger.checks.items()},
    }


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
        lines.append(f"    {name:<17} [{r['policy']:<10}] {detail}")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], reports_dir: Path) -> tuple[Path, Path]:
    """`validation.json` (machine) and `validation.txt` (human), atomically."""
    text = json.dumps(report, indent=2, default=str)
    json_path = io.atomic_write_text(reports_dir / f"{VALIDATION_REPORT}.json", text)
    text_path = io.atomic_write_text(reports_dir / f"{VALIDATION_REPORT}.txt", render_text(report))
    return json_path, text_path
