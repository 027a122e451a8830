"""Monitoring history in a real Evidently workspace; residual drift; the empty accuracy report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from history_support import SERIES, monitored_home

from fluxora.config import compose
from fluxora.data.schema import SERIES_ID
from fluxora.monitoring import effect, history, loop, residual


def _settings() -> effect.EffectSettings:
    return effect.settings(compose().monitor)


def _joined(days: int, worse: str | None, seed: int = 0) -> pd.DataFrame:
    """Matured points of hourly targets over `days` days for two series: the model misses by ~3,
    seasonal naive by ~10; in `worse` the last day's misses are ~12."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2026-01-01", periods=24 * days, freq="h", tz="UTC")
    frames = []
    for sid in ("a", "b"):
        actual = 100 + 20 * np.sin(np.arange(len(t)) * 2 * np.pi / 24)
        err = 3 * rng.standard_normal(len(t))
        if sid == worse:
            err[-24:] = 12 * rng.standard_normal(24)
        frames.append(
            pd.DataFrame(
                {
                    SERIES_ID: sid,
                    "target": t,
                    "status": "matured",
                    "actual": actual,
                    "value": actual + err,
                    "naive_daily": actual + 10 * rng.standard_normal(len(t)),
                    "naive_weekly": actual + 11 * rng.standard_normal(len(t)),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_residual_drift_flags_the_series_the_model_now_gets_wrong() -> None:
    s = _settings()
    res = residual.residual_drift(_joined(14, worse="b"), s, share_threshold=0.1)
    assert res["status"] == "ok" and res["n_judged"] == 2
    assert res["series_drifted"] == ["b"]
    b = res["series"]["b"]["stats"]["residual_ratio"]
    assert b["value"] > 1.0 > b["baseline"] and b["drifted"]
    assert res["series"]["a"]["drifted"] is False
    decision = loop.decide(None, {}, 100, pd.Timestamp.now(tz="UTC").to_pydatetime(), 24, 24, residual=res)
    assert decision.retrain and "residual drift" in decision.reason


def test_residual_drift_is_quiet_on_stationary_errors_and_needs_history() -> None:
    s = _settings()
    alarms = 0
    for seed in range(20):
        res = residual.residual_drift(_joined(14, worse=None, seed=seed), s, share_threshold=0.1)
        alarms += len(res["series_drifted"]) + len(res["series_bias_drifted"])
    assert alarms <= 2  # <= 5 % of 40 series x windows
    short = residual.residual_drift(_joined(5, worse="b"), s, share_threshold=0.1)
    assert short["status"] == "insufficient_data" and "11 days of matured served forecasts" in short["reason"]
    assert short["drifted"] is False
    decision = loop.decide(None, {}, 100, pd.Timestamp.now(tz="UTC").to_pydatetime(), 24, 24, residual=short)
    assert decision.retrain is False


def _runs(ws_path: Path) -> tuple[object, list[dict]]:
    from evidently.ui.workspace import Workspace

    ws = Workspace(str(ws_path))
    (project,) = ws.search_project(history.PROJECT)
    runs = [json.loads(ws.get_run(project.id, sid).json()) for sid in ws.list_runs(project.id)]
    return ws.get_dashboard(project.id), sorted(runs, key=lambda r: r["timestamp"])


def _values(run: dict) -> dict[str, float]:
    """Column -> value of the snapshot as Evidently stored it (its `MeanValue` results)."""
    return {
        r["metric_value_location"]["metric"]["params"]["column"]: r["value"] for r in run["metric_results"].values()
    }


def test_every_monitor_run_adds_a_snapshot_and_the_dashboard_is_idempotent(tmp_path: Path) -> None:
    from fluxora import steps

    home, cfg = monitored_home(tmp_path / "home", worse_series="series_001")
    first = steps.monitor(cfg, home).outputs()
    second = steps.monitor(cfg, home).outputs()
    dashboard, runs = _runs(history.workspace_dir(home.root))
    assert len(runs) == 2 and history.workspace_runs(history.workspace_dir(home.root)) == {history.PROJECT: 2}
    assert runs[0]["timestamp"] < runs[1]["timestamp"]
    assert first["history"]["snapshot_id"] != second["history"]["snapshot_id"]
    assert runs[1]["metadata"]["data_end"] == first["data_end"]

    values = _values(runs[1])
    acc = json.loads(Path(second["accuracy"]["json_path"]).read_text())
    assert values["MAE"] == pytest.approx(acc["overall"]["mae"])
    assert values["coverage"] == pytest.approx(acc["overall"]["coverage"])
    assert values["MAE step 01"] == pytest.approx(acc["by_step"]["1"]["mae"])
    assert values["MAE step 24"] == pytest.approx(acc["by_step"]["24"]["mae"])
    for sid in SERIES:
        assert values[f"{sid} · MAE"] == pytest.approx(acc["by_series"][sid]["mae"])
        assert f"{sid} · level score" in values  # the series' drift, in robust SDs
        assert f"{sid} · residual_ratio" in values
    assert all(np.isfinite(v) for v in values.values())

    # Residual drift: the series whose last day the model got wrong, and the retrain decision names it.
    assert second["residual_drifted"] == ["series_001"]
    assert acc["residual"]["series"]["series_000"]["drifted"] is False
    assert "residual drift" in second["decision"]["reason"]
    page = Path(second["accuracy"]["html_path"]).read_text()
    assert "Residual drift" in page and "series_001" in page and "scored against actuals up to" in page

    # The dashboard: stable ids, one line per series, the same after another run.
    titles = {p.title for p in dashboard.panels}
    assert {"Realized accuracy", "MAE per horizon step", "MAE", "level score", "residual_ratio"} <= titles
    by_title = {p.title: p for p in dashboard.panels}
    assert {v.metric_labels["column"] for v in by_title["MAE"].values} == {f"{s} · MAE" for s in SERIES}
    steps.monitor(cfg, home)
    again, runs = _runs(history.workspace_dir(home.root))
    assert len(runs) == 3
    assert [(p.id, p.title, len(p.values)) for p in again.panels] == [
        (p.id, p.title, len(p.values)) for p in dashboard.panels
    ]
    assert [t.title for t in again.tabs] == ["Overview", "Drift", "Accuracy", "Residuals"]


def test_an_empty_accuracy_report_says_when_its_first_figures_exist(tmp_path: Path) -> None:
    from fluxora import steps
    from fluxora.config import DataConfig
    from fluxora.data import io
    from fluxora.data.synthetic import generate
    from fluxora.paths import Home

    home = Home(tmp_path / "empty").ensure()
    io.write_parquet(generate(DataConfig(n_series=1, days=20)), home.validated_data)
    out = steps.monitor(compose(), home).outputs()
    page = Path(out["accuracy"]["html_path"]).read_text()
    assert "No figures yet." in page and "fluxora serve" in page
    assert "none</td>" not in page and "MAE / None" not in page
    # The history still records the run (drift share, counts), with no accuracy figure invented.
    _, runs = _runs(history.workspace_dir(home.root))
    values = _values(runs[0])
    assert values["matured points"] == 0 and "MAE" not in values


def test_pending_forecasts_give_the_hour_of_the_first_figures(tmp_path: Path) -> None:
    from fluxora.monitoring import accuracy

    t = pd.date_range("2026-01-01", periods=48, freq="h", tz="UTC")
    joined = pd.DataFrame({SERIES_ID: "a", "target": t, "status": ["matured"] * 10 + ["pending"] * 38})
    text = accuracy.first_figures(joined, 24, "insufficient_data")
    assert text is not None and "10 of 24 points matured" in text and t[10 + 13].isoformat() in text
