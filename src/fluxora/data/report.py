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
from fluxora.data.frames import CHECK, REASON, REPAIRED, ROW, first_series, freq_name
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

    def found(self, check: str, df: pd.DataFrame, mask: np.ndarray) -> int:
        """Count what `check` found; the first affected series are kept for the report."""
        result = self.checks[check]
        count = int(mask.sum())
        result.found += count
        if count:
            result.series = result.series or first_series(df, mask)
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
        """Why no row passed: the check that quarantined most rows, with its reason."""
        worst = max(self.quarantined, key=len, default=None)
        if worst is None:
            return "no rows passed the gate"
        check = str(worst[CHECK].iat[0])
        total = self.checks[check].rows_quarantined
        return f"no rows passed the gate; most ({total}) quarantined by {check}: {worst[REASON].iat[0]}"

    def quarantine_frame(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The quarantine file: the input rows moved out (input columns, in input order), check, reason."""
        if not self.quarantined:
            cols = [c for c in raw.columns] + [CHECK, REASON]
            return raw.iloc[0:0].assign(**{CHECK: pd.Series(dtype=str), REASON: pd.Series(dtype=str)})[cols]
        out = pd.concat(self.quarantined, ignore_index=True).sort_values(ROW, kind="stable")
        out[SERIES_ID] = out[SERIES_ID].astype(str)
        return out.drop(columns=[ROW, REPAIRED]).reset_index(drop=True)

    def repairs_frame(self) -> pd.DataFrame:
        """The repairs file: series, timestamp, check, column and the original value."""
        cols = [SERIES_ID, TIMESTAMP, CHECK, "column", "original"]
        if not self.repairs:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        out = pd.concat(self.repairs, ignore_index=True)[cols]
        return out.assign(**{SERIES_ID: out[SERIES_ID].astype(str)})


def build_report(
    ledger: Ledger,
    status: str,
    failure: dict[str, Any] | None,
    rows_out: int | None = None,
    rows_quarantined: int | None = None,
    rows_repaired: int | None = None,
    rows_filled: int | None = None,
    out: pd.DataFrame | None = None,
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
        "rows_written": None if out is None else len(out),
        "series_in": ledger.series_in,
        "series_out": None if out is None else int(out[SERIES_ID].nunique()),
        "model_resolution": freq_name(ledger.model_step),
        "source_resolution": by_step,
        "start": None if out is None or out.empty else str(out[TIMESTAMP].min()),
        "end": None if out is None or out.empty else str(out[TIMESTAMP].max()),
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
