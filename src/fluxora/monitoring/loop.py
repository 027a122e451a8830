"""The closed loop's decision: retrain or not, and why. Every decision is recorded.

Guardrails: drift must pass its threshold, a cooldown since the last trigger must have passed,
and enough new data must have arrived since then. The training that follows still has to pass
the promotion gate before anything is served.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

DECISIONS_FILE = "decisions.jsonl"
STATE_FILE = "loop_state.json"


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    at: str
    drifted: bool | None
    drift_share: float | None
    new_rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    drift: dict[str, Any] | None,
    state: dict[str, Any],
    rows_after: int,
    now: datetime,
    cooldown_hours: float,
    min_new_rows: int,
) -> Decision:
    """`state` holds the last trigger (`last_trigger_at`, `data_end`); `rows_after` counts the rows
    newer than the data end recorded at that trigger (all rows when there was none)."""
    drifted = None if drift is None else bool(drift.get("drifted"))
    share = None if drift is None else drift.get("drift_share")

    def made(retrain: bool, reason: str) -> Decision:
        return Decision(retrain, reason, now.isoformat(), drifted, share, rows_after)

    if drift is None or drift.get("status") == "insufficient_data":
        return made(False, "no drift result (insufficient data)")
    if not drifted:
        return made(False, f"no drift (share {share:.2f})")
    last = state.get("last_trigger_at")
    if last is not None:
        until = datetime.fromisoformat(last) + timedelta(hours=cooldown_hours)
        if now < until:
            return made(False, f"drift (share {share:.2f}) but in cooldown until {until.isoformat()}")
    if rows_after < min_new_rows:
        return made(
            False,
            f"drift (share {share:.2f}) but only {rows_after} new rows since the last retrain (minimum {min_new_rows})",
        )
    return made(True, f"drift (share {share:.2f}) past threshold; {rows_after} new rows")


def load_state(directory: Path) -> dict[str, Any]:
    path = directory / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def log_decision(directory: Path, decision: Decision) -> None:
    """Append every decision, triggered or not, with its reason."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / DECISIONS_FILE).open("a") as f:
        f.write(json.dumps(decision.to_dict()) + "\n")


def mark_triggered(directory: Path, at: str, data_end: str) -> None:
    """After a retrain was actually started: the cooldown and new-data guardrails count from here."""
    from fluxora.data.io import atomic_write_text

    atomic_write_text(directory / STATE_FILE, json.dumps({"last_trigger_at": at, "data_end": data_end}))
