"""The closed loop's decision: retrain or not, and why. Every decision is recorded.

Four signals can ask for a retrain: load drift (the share of judged series whose load drifted
against their own history, past its threshold; weather drift never counts), series that appeared
since the last trigger (the model has not seen them), realized-accuracy decay (the served
model's MAE on matured targets against seasonal naive on the same targets, past its threshold),
and residual drift (the share of series whose MAE / seasonal naive MAE rose past their own
record, `monitoring.residual`; a residual bias alone never counts).
Any one is enough; the guardrails then apply to both alike: a cooldown since the
last trigger must have passed, and enough new data must have arrived since then. The training
that follows still has to pass the promotion gate before anything is served.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fluxora.paths import DECISIONS_FILE, STATE_FILE

__all__ = ["DECISIONS_FILE", "STATE_FILE", "Decision", "decide", "load_state", "log_decision", "mark_triggered"]


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    at: str
    drifted: bool | None
    drift_share: float | None
    new_rows: int
    accuracy_decayed: bool | None = None  # None: no accuracy verdict (no log, too few matured points)
    mae_ratio: float | None = None  # realized MAE / the better seasonal naive's MAE, same targets

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    drift: dict[str, Any] | None,
    state: dict[str, Any],
    rows_after: int,
    now: datetime,
    cooldown_hours: float,
    min_new_rows: int,
    accuracy: dict[str, Any] | None = None,
    residual: dict[str, Any] | None = None,
) -> Decision:
    """`state` holds the last trigger (`last_trigger_at`, `data_end`); `rows_after` counts the rows
    newer than the data end recorded at that trigger (all rows when there was none). `accuracy` is
    the realized-accuracy report's `decay` verdict (`status`, `decayed`, `mae_ratio`, `threshold`);
    `residual` the residual drift summary (`monitoring.residual`: `drifted`, `drift_share`)."""
    drift_ok = drift is not None and drift.get("status") != "insufficient_data"
    verdict = accuracy if accuracy is not None and accuracy.get("status") == "ok" else None
    drifted = None if drift is None else bool(drift.get("drifted"))
    share = None if drift is None else drift.get("drift_share")
    decayed = None if verdict is None else bool(verdict["decayed"])
    ratio = None if verdict is None else verdict.get("mae_ratio")

    def made(retrain: bool, reason: str) -> Decision:
        return Decision(retrain, reason, now.isoformat(), drifted, share, rows_after, decayed, ratio)

    signals = []
    if drift is not None and drift_ok and drifted:
        signals.append(f"load drift in {drift.get('n_drifted')} of {drift.get('n_columns')} series (share {share:.2f})")
    if new := _new_since(drift, state):
        signals.append(f"{len(new)} new series ({', '.join(new[:3])}{', ...' if len(new) > 3 else ''})")
    if verdict is not None and decayed:
        signals.append(f"accuracy decay (MAE {ratio:.2f}x seasonal naive, threshold {verdict['threshold']:.2f})")
    if residual is not None and residual.get("status") == "ok" and residual.get("drifted"):
        signals.append(
            f"residual drift (MAE vs seasonal naive worse than its own record) in "
            f"{len(residual['series_drifted'])} of {residual['n_judged']} series (share {residual['drift_share']:.2f})"
        )
    if not signals:
        quiet = [f"no load drift (share {share:.2f})" if drift_ok else "no drift result (insufficient data)"]
        if accuracy is not None:
            quiet.append(
                f"accuracy holds (MAE {ratio:.2f}x seasonal naive, threshold {verdict['threshold']:.2f})"
                if verdict is not None
                else "no accuracy verdict (insufficient matured forecasts)"
            )
        return made(False, "; ".join(quiet))
    cause = " and ".join(signals)
    last = state.get("last_trigger_at")
    if last is not None:
        until = datetime.fromisoformat(last) + timedelta(hours=cooldown_hours)
        if now < until:
            return made(False, f"{cause} but in cooldown until {until.isoformat()}")
    if rows_after < min_new_rows:
        return made(
            False,
            f"{cause} but only {rows_after} new rows since the last retrain (minimum {min_new_rows})",
        )
    return made(True, f"{cause} past threshold; {rows_after} new rows")


def _new_since(drift: dict[str, Any] | None, state: dict[str, Any]) -> list[str]:
    """New series (first seen after the data end of the last trigger, or any without one)."""
    seen = (drift or {}).get("new_series") or {}
    since = state.get("data_end")
    if since is None:
        return sorted(seen)
    cut = datetime.fromisoformat(str(since).replace(" ", "T"))
    return sorted(sid for sid, first in seen.items() if datetime.fromisoformat(first) > cut)


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
