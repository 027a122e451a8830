"""The promotion gate: a challenger becomes champion only when it beats both the current
champion and the best seasonal naive, on the same backtest windows, by a margin."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    metric: str
    challenger: float
    naive: float
    champion: float | None  # None: no champion yet

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate(
    metric: str,
    challenger: float,
    naive: float,
    champion: float | None,
    margin: float,
    champion_note: str = "",
) -> GateDecision:
    """Lower is better. The challenger must be at most (1 - margin) x each reference.

    `champion_note` (non-empty) means a champion exists but could not be scored on these
    windows: the gate then keeps it, because an unmeasured champion cannot be shown worse.
    """
    factor = 1.0 - margin
    need = f"(margin {margin:.0%})"
    if not challenger <= factor * naive:
        return GateDecision(
            False, f"{metric} {challenger:.4g} does not beat best seasonal naive {naive:.4g} {need}", metric,
            challenger, naive, champion,
        )  # fmt: skip
    if champion_note:
        return GateDecision(False, f"champion kept: {champion_note}", metric, challenger, naive, champion)
    if champion is not None and not challenger <= factor * champion:
        return GateDecision(
            False, f"{metric} {challenger:.4g} does not beat champion {champion:.4g} {need}", metric, challenger,
            naive, champion,
        )  # fmt: skip
    versus = f"champion {champion:.4g} and " if champion is not None else "no champion yet; "
    return GateDecision(
        True, f"{metric} {challenger:.4g} beats {versus}best seasonal naive {naive:.4g} {need}", metric, challenger,
        naive, champion,
    )  # fmt: skip
