"""Backtest plots (matplotlib, Agg backend): forecast vs actual with intervals, error by step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fluxora.models.backtest import BacktestResult


def backtest_plots(result: BacktestResult, board: dict[str, Any], directory: Path, n_series: int = 3) -> list[Path]:
    """Write PNGs into `directory`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    steps = np.arange(1, result.spec.horizon + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for entry in board["models"]:
        ax.plot(steps, [row["mae"] for row in entry["per_horizon"]], label=entry["model"])
    ax.set(xlabel="hours ahead", ylabel="MAE", title="Backtest error by horizon step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(directory / "error_by_horizon.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    shown = [e["model"] for e in board["models"][:2]]  # the two best, so the plot stays readable
    paths.append(_forecast_figure(result, shown, directory / "forecast_vs_actual.png", n_series))
    return paths


def model_plots(result: BacktestResult, board: dict[str, Any], directory: Path, n_series: int = 3) -> dict[str, Path]:
    """One forecast-vs-actual PNG per model of the leaderboard (`<model>.png` in `directory`), for
    that model's own MLflow run."""
    import matplotlib

    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    names = [e["model"] for e in board["models"] if e["model"] in result.runs]
    return {name: _forecast_figure(result, [name], directory / f"{name}.png", n_series) for name in names}


def _forecast_figure(result: BacktestResult, shown: list[str], path: Path, n_series: int) -> Path:
    """Backtest forecasts of the `shown` models against the actuals, one panel per series."""
    import matplotlib.pyplot as plt

    ev = result.evaluation
    steps = np.arange(1, result.spec.horizon + 1)
    series = np.unique(ev.series.astype(str))[:n_series]
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 2.8 * len(series)), squeeze=False)
    for ax, sid in zip(axes[:, 0], series, strict=True):
        rows = np.flatnonzero(ev.series.astype(str) == sid)
        times = (ev.origins[rows, None] + steps[None, :] * np.timedelta64(ev.resolution.step_ns, "ns")).reshape(-1)
        order = np.argsort(times, kind="stable")
        ax.plot(times[order], ev.y[rows].reshape(-1)[order], color="black", lw=1, label="actual")
        for name in shown:
            run = result.runs[name]
            line = ax.plot(times[order], run.point[rows].reshape(-1)[order], lw=1, label=name)[0]
            levels = sorted(run.quantiles)
            if len(levels) >= 2:
                lo, hi = run.quantiles[levels[0]][rows], run.quantiles[levels[-1]][rows]
                ax.fill_between(
                    times[order], lo.reshape(-1)[order], hi.reshape(-1)[order], color=line.get_color(), alpha=0.2
                )
        ax.set_title(f"{sid}: backtest forecasts ({levels[0]:.0%}-{levels[-1]:.0%} band)", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
