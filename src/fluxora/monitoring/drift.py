"""The drift report: per-series effect statistics (`monitoring.effect`) judged in Evidently 0.7.

Evidently stays the engine of the report: every (series, statistic) is one `ValueDrift` column
whose reference is the statistic on the series' earlier comparable windows and whose current
value is the window judged. The drift method is Fluxora's own stattest, registered with
Evidently (`fluxora_own_history_*`): the same robust-SD rule as `effect.judge`, so the report's
pass/fail per column is the decision. Three files are written atomically into ``out_dir``:

* ``{name}.html``            - Evidently's report, headed by the windows compared and a per-series table
* ``{name}.evidently.json``  - Evidently's own snapshot JSON (``Snapshot.json()``)
* ``{name}.json``            - our summary (`effect.summarize` plus windows and files), written last

Evidently is imported lazily inside `drift_report` because importing it takes ~8 s.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fluxora.errors import FluxoraError
from fluxora.monitoring.effect import EffectSettings, judge

log = logging.getLogger(__name__)

_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
SEP = " · "  # column label: "<series> · <statistic>"


def drift_report(
    summary: dict[str, Any],
    series: dict[str, dict[str, Any]],
    windows: dict[str, Any],
    settings: EffectSettings,
    out_dir: Path,
    *,
    name: str = "drift",
    max_series: int = 20,
) -> dict[str, Any]:
    """Run Evidently on the judged series and write the report; return the summary as written.

    Only the `max_series` most remarkable judged series (drifted first, then by score) go into
    the Evidently report (it costs ~0.1 s per column); all are in the summary and the HTML table.
    Without a judged series there is no Evidently report: the page and the summary say why."""
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        k: out_dir / f"{name}{suffix}"
        for k, suffix in (("html", ".html"), ("json", ".json"), ("ev", ".evidently.json"))
    }
    shown = _shown(series, max_series)
    out = {
        **summary,
        "method": _method(settings),
        "windows": windows,
        "report_series": shown,
        "html_path": str(paths["html"]),
        "json_path": str(paths["json"]),
        "evidently_json_path": str(paths["ev"]) if shown else None,
        "generated_at": datetime.now(UTC).isoformat(),
    }
    if not shown:  # nothing to give Evidently: the page says why and when there will be
        if out["status"] != "ok":
            out["reason"] = f"{out['reason']} yet: each needs {needed_days(out['method'])} days of history"
        page = f"<!doctype html><html><meta charset='utf-8'><body>{_header(out, series, windows)}</body></html>"
        _write_atomic({paths["html"]: page, paths["json"]: json.dumps(out, indent=2, allow_nan=False) + "\n"}, name)
        return out
    snapshot, ev_json, version = _run_evidently(series, shown, settings, windows, name)
    out["evidently_version"] = version
    out["columns"] = _check_against(json.loads(ev_json), series, name)
    page = _header(out, series, windows) + snapshot.get_html_str(as_iframe=False)
    files = {
        paths["html"]: page,
        paths["ev"]: ev_json,
        paths["json"]: json.dumps(out, indent=2, allow_nan=False) + "\n",  # last: its presence means complete
    }
    _write_atomic(files, name)
    return out


def _method(s: EffectSettings) -> dict[str, Any]:
    return {
        "statistics": "per series: level, misfit, clock (load; retrain signals) and weather (reported only)",
        "window_days": s.window_days,
        "fit_weeks": s.fit_weeks,
        "history_windows": s.history_windows,
        "min_history_windows": s.min_history_windows,
        "k_robust_sd": s.k,
        "min_effect": dict(s.min_effect),
    }


def _shown(series: dict[str, dict[str, Any]], max_series: int) -> list[str]:
    judged = [sid for sid, r in series.items() if r["status"] == "ok"]

    def rank(sid: str) -> tuple[bool, float]:
        scores = [v["score"] for v in series[sid]["stats"].values() if v["score"] is not None]
        return (not series[sid]["drifted"], -max(scores, default=0.0))

    return sorted(judged, key=rank)[:max_series]


def _stattest_name(stat: str, s: EffectSettings) -> str:
    return f"fluxora_own_history_{stat}_k{s.k:g}_min{s.min_effect[stat]:g}"


def _register(stat: str, s: EffectSettings) -> str:
    """Register (idempotently, in Evidently's own registry) the stattest that judges `stat`."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    name = _stattest_name(stat, s)

    def own_history(reference_data: pd.Series, current_data: pd.Series, feature_type: Any, threshold: float) -> Any:
        res = judge(stat, float(current_data.iloc[-1]), list(reference_data.astype(float)), s)
        score = res["score"] if res["score"] is not None else 0.0
        return min(score, 1e6), res["drifted"]

    test = StatTest(
        name=name,
        display_name=f"{stat}: robust SDs from the series' own earlier windows (min effect {s.min_effect[stat]:g})",
        allowed_feature_types=[ColumnType.Numerical],
        default_threshold=s.k,
    )
    register_stattest(test, own_history)
    return name


def _run_evidently(
    series: dict[str, dict[str, Any]], shown: list[str], s: EffectSettings, windows: dict[str, Any], name: str
) -> tuple[Any, str, str]:
    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    current: dict[str, list[float]] = {}
    reference: dict[str, list[float]] = {}
    methods: dict[str, str] = {}
    for sid in shown:
        for stat, res in series[sid]["stats"].items():
            history = [v for v in res.get("history", []) if v is not None and math.isfinite(v)]
            if res["value"] is None or len(history) < s.min_history_windows:
                continue
            col = f"{sid}{SEP}{stat}"
            current[col], reference[col] = [res["value"]], history
            methods[col] = _register(stat, s)
    if not current:
        raise FluxoraError(f"drift report {name!r}: no statistic could be given to Evidently")
    n_ref = max(len(v) for v in reference.values())
    # Columns share one row count: shorter histories are padded with NaN, which Evidently drops.
    ref = pd.DataFrame({c: v + [np.nan] * (n_ref - len(v)) for c, v in reference.items()})
    cur = pd.DataFrame(current)
    definition = DataDefinition(numerical_columns=list(current))
    metadata = {"current_window": f"{windows.get('current_start')} .. {windows.get('end')}"}
    report = Report(
        [ValueDrift(column=c, method=methods[c], threshold=s.k) for c in current],
        include_tests=True,
        metadata=metadata,
        tags=["fluxora", "drift"],
    )
    try:
        snapshot = report.run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
            name=f"drift {metadata['current_window']}",
        )
        ev_json = snapshot.json()
    except Exception as exc:
        raise FluxoraError(f"drift report {name!r}: Evidently failed: {exc}") from exc
    return snapshot, ev_json, evidently.__version__


def _check_against(payload: dict[str, Any], series: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """Evidently's per-column score and decision; they must agree with `effect.judge`'s."""
    status = {
        t["metric_config"]["metric_id"]: t["status"]
        for t in payload.get("tests", [])
        if t.get("metric_config", {}).get("params", {}).get("type") == _VALUE_DRIFT
    }
    columns: dict[str, Any] = {}
    for metric in payload.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type") != _VALUE_DRIFT:
            continue
        col = config["column"]
        sid, stat = col.split(SEP)
        drifted = status.get(metric["id"]) == "FAIL"
        if drifted != series[sid]["stats"][stat]["drifted"]:
            raise FluxoraError(f"drift report {name!r}: Evidently and Fluxora disagree on {col!r}")
        columns[col] = {"score": _finite(metric["value"]), "drifted": drifted}
    return columns


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _header(out: dict[str, Any], series: dict[str, dict[str, Any]], windows: dict[str, Any]) -> str:
    """What the stock report cannot say: which windows are compared, and every series' verdict."""
    e = html.escape
    m = out["method"]
    rows = []
    for sid, r in sorted(series.items()):
        cells = []
        for stat in ("level", "misfit", "clock", "weather"):
            v = r.get("stats", {}).get(stat)
            if v is None or v["value"] is None:
                cells.append("<td>–</td>")
                continue
            mark = " <b>DRIFT</b>" if v["drifted"] else ""
            score = "–" if v["score"] is None else f"{v['score']:.1f}"
            cells.append(f"<td>{v['value']:+.3f} (median {v['baseline']:+.3f}, {score} SD){mark}</td>")
        verdict = "DRIFT" if r["drifted"] else r["status"]
        rows.append(f"<tr><td>{e(sid)}</td><td>{e(verdict)}</td>{''.join(cells)}</tr>")
    share = out["drift_share"]
    share_text = "" if share is None else f" (share {share:.2f}, retrain at {out['drift_share_threshold']:.2f})"
    return (
        "<div style='font-family:sans-serif;margin:16px'>"
        f"<h2>Fluxora drift: {'DRIFT' if out['drifted'] else 'no drift'}</h2>"
        f"<p>Current window {e(str(windows.get('current_start')))} .. {e(str(windows.get('end')))} "
        f"({m['window_days']} days). Each statistic is compared with the same statistic on up to "
        f"{m['history_windows']} earlier windows of the same series (back to back, each against an "
        f"expected load fitted on the {m['fit_weeks']} weeks before it: hour of the week and temperature). "
        f"Drift: more than {m['k_robust_sd']:g} robust SDs from their median and at least the minimum "
        f"effect {e(json.dumps(m['min_effect']))}.</p>"
        f"<p>Load drift in {out['n_drifted']} of {out['n_columns']} judged series"
        f"{share_text}; "
        f"new series: {len(out['new_series'])}; weather drift (reported, no retrain): "
        f"{len(out['weather']['series_drifted'])}. The Evidently report below holds the "
        f"{len(out['report_series'])} most remarkable series.</p>"
        + (
            ""
            if out["report_series"]
            else f"<p><b>No series could be judged yet.</b> A series needs {m['fit_weeks']} weeks for its expected "
            f"load, then {m['window_days']} days for the window and {m['min_history_windows']} earlier windows of "
            f"{m['window_days']} days each to compare with: {needed_days(m)} days of history in all.</p>"
        )
        + "<table border='1' cellpadding='4' style='border-collapse:collapse'><tr><th>series</th><th>verdict</th>"
        "<th>level</th><th>misfit</th><th>clock</th><th>weather (°C)</th></tr>" + "".join(rows) + "</table></div>"
    )


def needed_days(method: dict[str, Any]) -> int:
    """Days of history a series needs before its drift can be judged."""
    return int(7 * method["fit_weeks"] + method["window_days"] * (method["min_history_windows"] + 1))


def _write_atomic(files: dict[Path, str], name: str) -> None:
    """Write every file to a temp file beside it, fsync, then os.replace them in the given order."""
    temps: dict[Path, Path] = {}
    try:
        for target, text in files.items():
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".tmp")
            temps[target] = Path(tmp_name)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp_name, 0o644)  # mkstemp creates 0600
        for target, tmp in temps.items():
            os.replace(tmp, target)
    finally:
        for tmp in temps.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
