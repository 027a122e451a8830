"""What DVC reads from a training: plot data (forecast vs actual, error by horizon) as small CSVs
and the backtest leaderboard as one metrics file per model, so `dvc plots show`/`diff` and
`dvc metrics show` have rows to show. Written from the training's backtest; also logged to its
MLflow run, so a training that finds its version already registered restores them from there."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from fluxora.data import io
from fluxora.paths import Home

FORECAST_FILE = "forecast_vs_actual.csv"
ERROR_FILE = "error_by_horizon.csv"
FORECAST_COLUMNS = ["timestamp", "series_id", "actual", "forecast", "lower", "upper", "naive"]
# Fixed columns whatever the model is called, so `dvc plots diff` compares experiments
# (`model` is the trained model's MAE, `champion` empty when no champion was scored).
ERROR_COLUMNS = ["step", "model", "seasonal_naive_daily", "seasonal_naive_weekly", "champion"]
ARTIFACT_PATH = "dvc"  # where they are logged in the training's MLflow run


def write(home: Home, result: Any, board: dict[str, Any], winner: str) -> list[Path]:
    """Write the plot CSVs and the per-model backtest metrics of `result` (a models.backtest
    BacktestResult) and its leaderboard `board`; returns the files written."""
    from fluxora.models.backtest import best_baseline
    from fluxora.models.forecasters import BASELINES

    naive, _ = best_baseline(board, BASELINES)
    files = [
        _write_csv(home.plots_dir / FORECAST_FILE, FORECAST_COLUMNS, _forecast_rows(result, winner, naive)),
        _write_csv(home.plots_dir / ERROR_FILE, ERROR_COLUMNS, _error_rows(board, winner)),
    ]
    return files + write_backtest_metrics(
        home, {e["model"]: {"rank": e["rank"]} | e["overall"] for e in board["models"]}
    )


def write_backtest_metrics(home: Home, by_model: dict[str, dict[str, float]]) -> list[Path]:
    """One `<model>.json` per model in `home.backtest_metrics` (a previous run's files removed)."""
    shutil.rmtree(home.backtest_metrics, ignore_errors=True)
    home.backtest_metrics.mkdir(parents=True, exist_ok=True)
    return [
        io.atomic_write_text(home.backtest_metrics / f"{name}.json", json.dumps(_numbers(m), indent=2))
        for name, m in by_model.items()
    ]


def restore(home: Home, run_id: str, metrics: dict[str, float]) -> None:
    """The files of an already registered version, from its MLflow run; a run logged before they
    existed gets header-only plots and its winner's metrics, so DVC's outputs still exist."""
    import tempfile

    from fluxora import registry

    with tempfile.TemporaryDirectory(prefix="fluxora-dvc-") as tmp:
        found = registry.download_artifacts(home, run_id, ARTIFACT_PATH, Path(tmp))
        if found is not None and (found / "plots").is_dir() and (found / "backtest").is_dir():
            for sub, target in (("plots", home.plots_dir), ("backtest", home.backtest_metrics)):
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(found / sub, target)
            return
    for path, columns in (
        (home.plots_dir / FORECAST_FILE, FORECAST_COLUMNS),
        (home.plots_dir / ERROR_FILE, ERROR_COLUMNS),
    ):
        _write_csv(path, columns, [])
    write_backtest_metrics(home, {"model": winner_metrics(metrics)})


def log(home: Home, run_id: str, files: list[Path]) -> None:
    """Log the files to the training's run (`dvc/plots/…`, `dvc/backtest/…`)."""
    from fluxora import registry

    for sub in ("plots", "backtest"):
        parent = home.plots_dir if sub == "plots" else home.backtest_metrics
        mine = [f for f in files if f.parent == parent]
        registry.log_artifacts(home, run_id, mine, f"{ARTIFACT_PATH}/{sub}")


def winner_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The trained model's own backtest figures and its skill, out of the training's metrics
    (which also hold each naive's, the champion's and every candidate's)."""
    others = ("naive_daily_", "naive_weekly_", "baseline_", "champion_")
    return {k: v for k, v in metrics.items() if "." not in k and not k.startswith(others)}


def _numbers(values: dict[str, Any]) -> dict[str, float | int | None]:
    return {k: (None if v != v else (round(v, 4) if isinstance(v, float) else v)) for k, v in values.items()}


def _forecast_rows(result: Any, winner: str, naive: str) -> list[list[Any]]:
    """The first series' backtest targets in time order: actual, the winner's forecast and its
    outermost quantiles, and the better naive's. Where windows overlap, each hour is taken from
    the latest origin before it (the shortest lead)."""
    ev = result.evaluation
    series = ev.series.astype(str)
    if not len(series):
        return []
    sid = sorted(set(series))[0]
    rows = np.flatnonzero(series == sid)
    horizon = ev.y.shape[1]
    step = np.timedelta64(ev.resolution.step_ns, "ns")  # the model resolution
    times = ev.origins[rows, None] + np.arange(1, horizon + 1)[None, :] * step
    run, base = result.runs[winner], result.runs[naive]
    levels = sorted(run.quantiles)
    flat = {
        "actual": ev.y[rows],
        "forecast": run.point[rows],
        "lower": run.quantiles[levels[0]][rows] if len(levels) >= 2 else np.full_like(ev.y[rows], np.nan),
        "upper": run.quantiles[levels[-1]][rows] if len(levels) >= 2 else np.full_like(ev.y[rows], np.nan),
        "naive": base.point[rows],
    }
    stamps = times.reshape(-1)
    lead = np.broadcast_to(np.arange(horizon)[None, :], times.shape).reshape(-1)
    order = np.lexsort((-lead, stamps))  # by time, the shortest lead last
    keep = order[np.append(stamps[order][1:] != stamps[order][:-1], True)]
    text = np.datetime_as_string(stamps[keep].astype("datetime64[s]"), unit="s")
    values = {k: v.reshape(-1)[keep] for k, v in flat.items()}
    return [[f"{t}Z", sid, *(_fmt(values[c][i]) for c in FORECAST_COLUMNS[2:])] for i, t in enumerate(text)]


def _error_rows(board: dict[str, Any], winner: str) -> list[list[Any]]:
    """MAE per hour ahead of the trained model, both seasonal naives and the champion."""
    by_role: dict[str, list[dict[str, Any]]] = {}
    for entry in board["models"]:
        name = entry["model"]
        role = "model" if name == winner else "champion" if name.startswith("champion_v") else name
        if role in ERROR_COLUMNS:
            by_role[role] = entry["per_horizon"]
    steps = len(by_role["model"])
    return [
        [s + 1, *(_fmt(by_role[r][s]["mae"]) if r in by_role else "" for r in ERROR_COLUMNS[1:])] for s in range(steps)
    ]


def _fmt(value: Any) -> Any:
    v = float(value)
    return "" if not np.isfinite(v) else round(v, 4)


def _write_csv(path: Path, columns: list[str], rows: list[list[Any]]) -> Path:
    import io as stdio

    buf = stdio.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    return io.atomic_write_text(path, buf.getvalue())
