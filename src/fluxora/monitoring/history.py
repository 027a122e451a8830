"""Monitoring history in an Evidently 0.7 workspace, shown over time by Evidently's own UI.

Every monitoring run adds one snapshot to the project `PROJECT` of the local workspace at
``$FLUXORA_HOME/evidently`` (`workspace_dir`). The snapshot is an Evidently `Report` of stock
`MeanValue` metrics over a one-row dataset whose columns are the run's figures: drift share and
each series' drift scores (robust SDs from its own history), realized accuracy overall, per
horizon step and per series, interval coverage, and residual drift. A figure that does not exist
yet (a series not judged, no matured forecast) is left out rather than written as NaN. The
snapshot's timestamp is the run's time (UTC); the data's end and the verdicts are in its metadata.

The project's dashboard (tabs Overview, Drift, Accuracy, Residuals; line panels of those figures
over time) is rebuilt from the figures of the run and saved whole, with panel and tab ids derived
from their titles, so running it again changes nothing but new series.

`evidently ui --workspace $FLUXORA_HOME/evidently` (`fluxora monitor ui`) reads the files as
written; `workspace_runs` counts runs without importing Evidently (~8 s).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fluxora.errors import FluxoraError

PROJECT = "Fluxora monitoring"
WORKSPACE_DIR = "evidently"
SEP = " · "
_NS = uuid.UUID("8f9b3f4e-5c1a-4c33-9a53-6f0e8e1b7a21")  # namespace of the dashboard's stable ids
# Lead times recorded, in hours: a few, not all (each figure is one Evidently metric, ~0.05-0.1 s
# to compute). They pick the same lead at every resolution ("MAE step 24" is a day ahead: step 24
# of an hourly model, step 48 at 30 minutes, 96 at 15), so a dashboard reads the same for all.
LEAD_HOURS = (1, 2, 3, 6, 12, 24, 36, 48)


def workspace_dir(home_root: Path) -> Path:
    return Path(home_root) / WORKSPACE_DIR


def workspace_runs(path: Path) -> dict[str, int]:
    """Project name -> number of runs in the workspace at `path` (read from Evidently's files)."""
    import json

    out: dict[str, int] = {}
    if not Path(path).is_dir():
        return out
    for meta in Path(path).glob("*/metadata.json"):
        try:
            name = json.loads(meta.read_text()).get("name", meta.parent.name)
        except (OSError, ValueError):
            continue
        out[str(name)] = len(list((meta.parent / "snapshots").glob("*.json")))
    return out


def figures(
    drift: dict[str, Any],
    per_series: dict[str, dict[str, Any]],
    accuracy: dict[str, Any],
    residual: dict[str, Any] | None,
    max_series: int,
) -> dict[str, dict[str, float]]:
    """The run's figures by dashboard tab: column name -> value (finite values only)."""
    tabs: dict[str, dict[str, float]] = {"Overview": {}, "Drift": {}, "Accuracy": {}, "Residuals": {}}

    def put(tab: str, name: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            tabs[tab][name] = float(value)

    put("Overview", "series monitored", drift.get("n_series", len(per_series)))
    put("Overview", "series judged", drift.get("n_columns"))
    put("Overview", "load drift share", drift.get("drift_share"))
    put("Overview", "weather drift share", (drift.get("weather") or {}).get("drift_share"))
    put("Overview", "new series", len(drift.get("new_series") or {}))
    points = accuracy.get("points", {})
    put("Overview", "matured points", points.get("matured"))
    put("Overview", "pending points", points.get("pending"))
    overall = accuracy.get("overall", {})
    if overall.get("status") == "ok":
        put("Overview", "MAE", overall.get("mae"))
        put("Overview", "coverage", overall.get("coverage"))
    decay = accuracy.get("decay", {})
    if decay.get("status") == "ok":
        put("Overview", "MAE / seasonal naive MAE", decay.get("mae_ratio"))
    if residual is not None:
        put("Overview", "residual drift share", residual.get("drift_share"))

    for sid in _first(per_series, max_series):
        for stat, res in per_series[sid].get("stats", {}).items():
            put("Drift", f"{sid}{SEP}{stat} score", res.get("score"))
    for step, r in sorted(accuracy.get("by_step", {}).items(), key=lambda kv: int(kv[0])):
        lead = float(r.get("lead_hours", int(step)))  # reports before the field: hourly steps
        if lead in LEAD_HOURS and r.get("status") == "ok":
            put("Accuracy", f"MAE step {int(lead):02d}", r.get("mae"))
    for sid in _first(accuracy.get("by_series", {}), max_series):
        r = accuracy["by_series"][sid]
        if r.get("status") == "ok":
            put("Accuracy", f"{sid}{SEP}MAE", r.get("mae"))
            put("Accuracy", f"{sid}{SEP}coverage", r.get("coverage"))
    if residual is not None:
        for sid in _first(residual.get("series", {}), max_series):
            for stat, res in residual["series"][sid].get("stats", {}).items():
                put("Residuals", f"{sid}{SEP}{stat}", res.get("value"))
    return tabs


def _first(items: dict[str, Any], n: int) -> list[str]:
    """The drifted first, then by name: at most `n` (a dashboard of 1,000 lines shows nothing)."""
    return sorted(items, key=lambda k: (not items[k].get("drifted", False), k))[:n]


def add_snapshot(
    home_root: Path,
    tabs: dict[str, dict[str, float]],
    *,
    metadata: dict[str, str],
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """Add the run's figures as one snapshot to the workspace and save the dashboard; return where."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue
    from evidently.ui.workspace import Workspace

    columns = {name: value for tab in tabs.values() for name, value in tab.items()}
    if not columns:
        raise FluxoraError("monitoring history: the run has no figure to record")
    import pandas as pd

    path = workspace_dir(home_root)
    path.mkdir(parents=True, exist_ok=True)
    when = (timestamp or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)  # Evidently keeps naive UTC
    frame = pd.DataFrame([columns])
    report = Report([MeanValue(column=c) for c in columns], metadata=metadata, tags=["fluxora", "monitor"])
    try:
        snapshot = report.run(
            Dataset.from_pandas(frame, data_definition=DataDefinition(numerical_columns=list(columns))),
            None,
            timestamp=when,
            name=f"monitor {when.isoformat(timespec='seconds')}Z",
        )
        ws = Workspace(str(path))
        project = _project(ws)
        ref = ws.add_run(project.id, snapshot)
        ws.save_dashboard(project.id, _dashboard(ws, project.id, tabs))
    except FluxoraError:
        raise
    except Exception as exc:
        raise FluxoraError(f"monitoring history: Evidently could not write to {path}: {exc}") from exc
    return {
        "workspace": str(path),
        "project_id": str(project.id),
        "snapshot_id": str(ref.id),
        "timestamp": when.isoformat() + "Z",
        "figures": len(columns),
    }


def _project(ws: Any) -> Any:
    found = ws.search_project(PROJECT)
    if found:
        return sorted(found, key=lambda p: str(p.id))[0]
    return ws.create_project(PROJECT, description="Fluxora's monitoring runs: drift, realized accuracy, residuals")


def _id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(_NS, "/".join(parts))


def _dashboard(ws: Any, project_id: Any, tabs: dict[str, dict[str, float]]) -> Any:
    """Every panel of the previous dashboard whose figures still exist, plus this run's: a panel per
    group of figures (one line per column), in tabs; ids stable across runs."""
    from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric
    from evidently.sdk.panels import line_plot_panel

    groups: dict[tuple[str, str], list[str]] = {}
    for tab, figs in tabs.items():
        for col in figs:
            groups.setdefault((tab, _panel_title(tab, col)), []).append(col)
    try:
        old = ws.get_dashboard(project_id)
    except Exception:
        old = None
    # Keep lines seen in earlier runs (a series not judged this hour keeps its history on screen).
    if old is not None:
        titles = {t.id: t.title for t in old.tabs}
        for tab_model in old.tabs:
            for panel in old.panels:
                if panel.id in tab_model.panels:
                    key = (str(titles[tab_model.id]), panel.title)
                    cols = groups.setdefault(key, [])
                    cols.extend(
                        v.metric_labels.get("column", "") for v in panel.values if v.metric_labels.get("column")
                    )
    panels, tab_models = [], []
    for tab in tabs:
        keys = sorted(k for k in groups if k[0] == tab)
        ids = []
        for key in keys:
            cols = sorted(set(groups[key]))
            panel = line_plot_panel(
                key[1],
                [PanelMetric(legend=c.split(SEP)[0], metric="MeanValue", metric_labels={"column": c}) for c in cols],
                description=_describe(tab, key[1]),
                size="half" if tab != "Overview" else "full",
            )
            panel.id = _id(tab, key[1])
            panels.append(panel)
            ids.append(panel.id)
        if ids:
            tab_models.append(DashboardTabModel(id=_id("tab", tab), title=tab, panels=ids))
    return DashboardModel(tabs=tab_models, panels=panels)


def _panel_title(tab: str, col: str) -> str:
    if tab == "Overview":
        if col in ("series monitored", "series judged", "new series"):
            return "Series"
        if "share" in col:
            return "Drift shares"
        if col.endswith("points"):
            return "Forecast points"
        return "Realized accuracy"
    if tab == "Accuracy" and col.startswith("MAE step"):
        return "MAE per horizon step"
    if SEP in col:
        return col.split(SEP, 1)[1]
    return col


def _describe(tab: str, title: str) -> str:
    return {
        "Drift": "robust SDs from the series' own earlier windows (drift above monitor.drift_k)",
        "Accuracy": "matured served forecasts against actuals",
        "Residuals": "served forecasts against actuals, daily windows",
    }.get(tab, "each monitoring run")
