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


@dataclass(frozen=True)
class Selection:
    """The backtest's winner among the candidates, the metrics logged for it, and the gate's verdict."""

    winner: str
    metrics: dict[str, float]
    decision: GateDecision


def candidate_names(model_name: str, candidates: list[str], include_baselines: bool = False) -> list[str]:
    """The models `model=<name>` competes with: all of `model.candidates` for `auto` (those whose
    library is installed), else just it."""
    from fluxora.models.forecasters import BASELINES, installed

    names = installed(list(candidates)) if model_name == "auto" else [model_name]
    return [*BASELINES, *names] if include_baselines else names


def select(
    board: dict[str, Any], candidates: list[str], metric: str, margin: float, champion_note: str = ""
) -> Selection:
    """Pick the candidate with the lowest `metric` on the leaderboard and gate it against the best
    seasonal naive and the champion (a `champion_v<N>` row), on the same windows.

    The metrics are the winner's, each seasonal naive's (`naive_daily_*`, `naive_weekly_*`), the
    better naive (`baseline_<metric>`), the skill against it and the champion's. Every model's own
    figures are in the leaderboard (and each one's MLflow child run)."""
    from fluxora.models.backtest import best_baseline
    from fluxora.models.forecasters import BASELINES

    by_name = {e["model"]: e["overall"] for e in board["models"]}
    winner = min(candidates, key=lambda n: by_name[n][metric])
    _, naive = best_baseline(board, BASELINES)
    champ = next((e["overall"][metric] for e in board["models"] if e["model"].startswith("champion_v")), None)
    decision = gate(metric, by_name[winner][metric], naive, champ, margin, champion_note)
    metrics = dict(by_name[winner])
    for label, model in (("naive_daily", BASELINES[0]), ("naive_weekly", BASELINES[1])):
        metrics |= {f"{label}_{k}": v for k, v in by_name[model].items()}
    metrics[f"baseline_{metric}"] = naive
    metrics[f"skill_{metric}"] = 1.0 - by_name[winner][metric] / naive
    if champ is not None:
        metrics[f"champion_{metric}"] = champ
    return Selection(winner, metrics, decision)
