"""Monitor: per-series drift of the latest window judged against each series' own history, the
realized accuracy of served forecasts, and the closed loop's retrain decision."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.resolution import Resolution
from fluxora.data.schema import TIMESTAMP
from fluxora.monitoring.loop import Decision
from fluxora.paths import DRIFT_REPORT, Home
from fluxora.steps.base import StepResult


@dataclass(frozen=True)
class AccuracyBrief:
    """The realized-accuracy report in brief (the full tables are in its JSON and HTML)."""

    status: str  # ok | insufficient_data
    reason: str | None
    points: dict[str, int]  # matured, pending, missing
    forecasts: int
    json_path: str
    html_path: str
    mae: float | None
    mape: float | None
    coverage: float | None
    decay: dict[str, Any]
    by_weather: dict[str, dict[str, Any]]  # with_forecast / without_forecast: scores and MAE ratio

    @classmethod
    def of(cls, report: dict[str, Any]) -> AccuracyBrief:
        overall = report["overall"]
        return cls(
            status=report["status"],
            reason=report.get("reason"),
            points=report["points"],
            forecasts=report["forecasts"],
            json_path=report["json_path"],
            html_path=report["html_path"],
            mae=overall["mae"],
            mape=overall["mape"],
            coverage=overall["coverage"],
            decay=report["decay"],
            by_weather=report.get("by_weather", {}),
        )


@dataclass(frozen=True)
class MonitorResult(StepResult):
    step = "monitor"
    status: str  # the drift report: ok | insufficient_data
    drifted: bool
    drift_share: float | None
    html: str | None  # the drift report's HTML (None without one)
    json: str
    series_json: str
    windows: dict[str, Any]
    series_drifted: list[str]  # load drift: the retrain signal
    series_insufficient: list[str]
    new_series: list[str]
    weather_drifted: list[str]  # reported only, never a retrain signal on its own
    accuracy: AccuracyBrief
    decision: Decision
    data_end: str
    logged_to_run: str | None
    alerts: list[dict[str, Any]]  # webhook deliveries (monitoring.alerts.Delivery); [] without a webhook
    residual_drifted: list[str] = field(default_factory=list)  # series whose MAE vs naive drifted up
    history: dict[str, Any] | None = None  # the Evidently workspace snapshot (monitoring.history.add_snapshot)


def monitor(cfg: FluxoraConfig, home: Home, run_id: str | None = None) -> MonitorResult:
    """Drift on the latest window against a season-matched reference, overall and per series, the
    realized accuracy of served forecasts, and the closed loop's retrain decision. Too little data
    is reported as such, never a crash."""
    from fluxora import registry
    from fluxora.monitoring import alerts, loop
    from fluxora.steps.train import last_train_run

    m = cfg.monitor
    alerts.Webhook.from_config(m, home)  # a malformed webhook URL is a config error, before any work
    span = _span(home)
    # First, before anything is written: an unreachable forecast-log database fails the step whole.
    forecast_log, log_note, log_window = _forecast_log(cfg, home, span)
    state = loop.load_state(home.reports)
    since = pd.Timestamp(state["data_end"]) if "data_end" in state else None
    scan = _scan(cfg, home, span, forecast_log, since)
    drift, per_series, windows = _drift(cfg, home, scan)
    series_path = io.atomic_write_text(
        home.drift_series, json.dumps({"windows": windows, "series": per_series}, indent=2, default=str)
    )
    files = [Path(p) for p in (drift["html_path"], drift["json_path"], drift["evidently_json_path"]) if p]

    accuracy = _realized_accuracy(cfg, home, forecast_log, scan, log_note, log_window)
    files += [Path(accuracy["html_path"]), Path(accuracy["json_path"]), series_path]

    new_rows = scan.new_rows
    residual = accuracy.get("residual")
    now = datetime.now(UTC)
    decision = loop.decide(
        drift,
        state,
        new_rows,
        now,
        m.retrain_cooldown_hours,
        m.retrain_min_new_rows,
        accuracy=accuracy["decay"],
        residual=residual,
    )
    # The registry first: if it is down the step fails (and is retried) before a decision is
    # recorded, so a failed run leaves complete report files and nothing else behind.
    run_id = run_id or last_train_run(home)
    if run_id:
        registry.log_artifacts(home, run_id, files, "reports")
    snapshot = _history(cfg, home, drift, per_series, accuracy, decision, windows, now)
    loop.log_decision(home.reports, decision)
    raised = alerts.monitor_alerts(
        drift, accuracy["decay"], scan.ends, datetime.now(UTC), cfg.serve.max_feature_age_s, decision.reason
    )
    deliveries = [d.to_dict() for d in alerts.send(m, home, raised, "monitor")]
    out = MonitorResult(
        status=drift["status"],
        drifted=drift["drifted"],
        drift_share=drift["drift_share"],
        html=drift["html_path"],
        json=str(home.drift_json),
        series_json=str(series_path),
        windows=windows,
        series_drifted=drift["series_drifted"],
        series_insufficient=drift["series_insufficient"],
        new_series=sorted(drift["new_series"]),
        weather_drifted=drift["weather"]["series_drifted"],
        accuracy=AccuracyBrief.of(accuracy),
        decision=decision,
        data_end=str(windows["end"]),
        logged_to_run=run_id,
        alerts=deliveries,
        residual_drifted=[] if residual is None else residual["series_drifted"],
        history=snapshot,
    )
    _write_metrics(cfg, home, out)
    return out


def _history(
    cfg: FluxoraConfig,
    home: Home,
    drift: dict[str, Any],
    per_series: dict[str, Any],
    accuracy: dict[str, Any],
    decision: Decision,
    windows: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """This run's figures as one snapshot in the Evidently workspace (`fluxora monitor ui` shows them)."""
    from fluxora.monitoring import history

    tabs = history.figures(drift, per_series, accuracy, accuracy.get("residual"), cfg.monitor.report_max_series)
    metadata = {
        "data_end": str(windows.get("end")),
        "current_window": f"{windows.get('current_start')} .. {windows.get('end')}",
        "drift": "drift" if drift["drifted"] else drift["status"],
        "accuracy": accuracy["status"],
        "decision": decision.reason,
    }
    return history.add_snapshot(home.root, tabs, metadata=metadata, timestamp=now)


@dataclass
class _Scan:
    """What monitoring needs of the validated data, gathered in one pass a batch of series at a time."""

    end: pd.Timestamp | None  # the data's latest hour (the drift window's end)
    per_series: dict[str, dict[str, Any]]  # series -> its drift verdict (`effect.panel_effects`)
    actuals: pd.DataFrame  # the logged series' rows from the forecast log's first origin on (minus a week)
    new_rows: int  # rows after the last decision's data end (all rows before any decision)
    ends: dict[str, datetime]  # series -> its latest timestamp (UTC): what its online features hold
    resolution: Resolution  # the data's step


def _holidays(cfg: FluxoraConfig) -> str:
    """The model's holiday calendar; the synthetic sample has its own holidays."""
    return cfg.features.holiday_country or (cfg.data.holidays_country if cfg.data.source == "synthetic" else "")


def _span(home: Home) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The validated data's first and last timestamp (UTC), from the file's statistics."""
    found = io.column_range(home.validated_data, TIMESTAMP)
    return None if found is None else (_utc(found[0]), _utc(found[1]))


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _scan(
    cfg: FluxoraConfig,
    home: Home,
    span: tuple[pd.Timestamp, pd.Timestamp] | None,
    forecast_log: pd.DataFrame,
    since: pd.Timestamp | None,
) -> _Scan:
    """Drift per series, the actuals the forecast log is scored on, new rows and each series' end,
    reading the validated table `data.batch_series` series at a time: memory holds one batch and
    the per-series results, not the data (every figure is a per-series one, so batches agree with
    one pass over the whole table)."""
    from fluxora.data.frames import data_resolution
    from fluxora.data.ingest import batch_size
    from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE
    from fluxora.monitoring import effect
    from fluxora.monitoring.accuracy import NAIVE_LAGS

    s = effect.settings(cfg.monitor)
    country = _holidays(cfg)
    end = None if span is None else span[1].floor("h")
    first = None if span is None else span[0].floor("h")
    logged = set(forecast_log[SERIES_ID].astype(str)) if len(forecast_log) else set()
    # The scored targets and their naive forecasts (up to a week before a target) lie after this.
    cutoff = (
        pd.to_datetime(forecast_log["origin"], utc=True).min() - pd.Timedelta(hours=max(NAIVE_LAGS.values()) + 1)
        if len(forecast_log)
        else None
    )
    per_series: dict[str, dict[str, Any]] = {}
    actuals: list[pd.DataFrame] = []
    ends: dict[str, datetime] = {}
    steps: list[Resolution] = []
    new_rows = 0
    columns = [TIMESTAMP, LOAD, TEMPERATURE]
    for frame, _ in io.SeriesBatches(home.validated_data, batch_size(cfg.data), SERIES_ID, columns):
        if not len(frame):
            continue
        frame[SERIES_ID] = frame[SERIES_ID].astype(str)
        stamps = pd.to_datetime(frame[TIMESTAMP], utc=True)
        _, judged = effect.panel_effects(frame, s, end, country, cfg.features.timezone, first)
        per_series.update(judged)
        new_rows += int((stamps > since).sum()) if since is not None else len(frame)
        ends.update({str(k): t.to_pydatetime() for k, t in stamps.groupby(frame[SERIES_ID]).max().items()})
        steps.append(data_resolution(frame))
        if cutoff is not None:
            keep = frame[SERIES_ID].isin(logged).to_numpy() & (stamps >= cutoff).to_numpy()
            actuals.append(frame.loc[keep, [SERIES_ID, TIMESTAMP, LOAD]])
        del frame, stamps
    found = pd.concat(actuals, ignore_index=True) if actuals else pd.DataFrame(columns=[SERIES_ID, TIMESTAMP, LOAD])
    resolution = min(steps, key=lambda r: r.step_ns) if steps else data_resolution(found)
    return _Scan(end, dict(sorted(per_series.items())), found, new_rows, ends, resolution)


def _drift(cfg: FluxoraConfig, home: Home, scan: _Scan) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Every series judged against its own history, and the Evidently report of it."""
    from fluxora.monitoring import effect
    from fluxora.monitoring.drift import drift_report

    m = cfg.monitor
    s = effect.settings(m)
    country = _holidays(cfg)
    end, per_series = scan.end, scan.per_series
    windows = {
        "kind": "own_history",
        "current_start": None if end is None else str(end - pd.Timedelta(days=s.window_days)),
        "end": None if end is None else str(end),
        "fit_weeks": s.fit_weeks,
        "history_windows": s.history_windows,
        "holidays": country or None,
        "timezone": cfg.features.timezone,
    }
    summary = effect.summarize(per_series, m.drift_share_threshold)
    drift = drift_report(
        summary, per_series, windows, s, home.reports, name=DRIFT_REPORT, max_series=m.report_max_series
    )
    return drift, per_series, windows


def _write_metrics(cfg: FluxoraConfig, home: Home, out: MonitorResult) -> None:
    """DVC's monitoring metrics (numbers only), a file each for drift, realized accuracy and webhook alerts, so
    `dvc metrics show` has rows; realized MAE/MAPE/coverage share their names with the backtest's."""
    from fluxora.monitoring.accuracy import check_interval

    acc = out.accuracy
    lo, hi = check_interval(cfg.monitor.accuracy_interval)
    drift = {
        "drifted": int(bool(out.drifted)),
        "drift_share": out.drift_share,
        "series_drifted": len(out.series_drifted),
        "series_new": len(out.new_series),
        "series_weather_drifted": len(out.weather_drifted),
        "retrain": int(out.decision.retrain),
    }
    accuracy = {
        "mae": acc.mae,
        "mape": acc.mape,
        f"coverage_{round((hi - lo) * 100)}": acc.coverage,
        "mae_ratio": acc.decay["mae_ratio"],
        "points_matured": acc.points["matured"],
        "points_pending": acc.points["pending"],
    }
    for group, scores in acc.by_weather.items():  # null below monitor.accuracy_min_points: not a 0
        ok = scores["status"] == "ok"
        accuracy[f"mae_{group}"] = scores["mae"] if ok else None
        accuracy[f"mae_ratio_{group}"] = scores["mae_ratio"] if ok else None
    alerts = {
        "alerts_sent": sum(d["status"] == "sent" for d in out.alerts),
        "alerts_failed": sum(d["status"] == "failed" for d in out.alerts),
    }
    for name, values in (("drift", drift), ("accuracy", accuracy), ("webhooks", alerts)):
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}
        io.atomic_write_text(home.monitor_metrics / f"{name}.json", json.dumps(rounded, indent=2))


def _forecast_log(
    cfg: FluxoraConfig, home: Home, span: tuple[pd.Timestamp, pd.Timestamp] | None
) -> tuple[pd.DataFrame, str | None, dict[str, Any]]:
    """The service's forecast log for the accuracy window (forecasts served after the latest
    actual minus `monitor.accuracy_days`)."""
    from fluxora.monitoring import accuracy

    accuracy.check_interval(cfg.monitor.accuracy_interval)  # a config error, before anything is written
    end = span[1] if span is not None else pd.Timestamp.now(tz="UTC")
    after = (end - pd.Timedelta(days=cfg.monitor.accuracy_days)).to_pydatetime()
    url = cfg.infra.database_url or home.service_database_url  # the service's, as it would use it
    log, note = accuracy.load_log(url, served_after=after)
    return log, note, {"served_after": after.isoformat(), "actuals_end": str(end) if span is not None else None}


def _realized_accuracy(
    cfg: FluxoraConfig,
    home: Home,
    forecast_log: pd.DataFrame,
    scan: _Scan,
    note: str | None,
    window: dict[str, Any],
) -> dict[str, Any]:
    from fluxora.monitoring import effect, residual
    from fluxora.monitoring.accuracy import accuracy_report

    m = cfg.monitor
    s = effect.settings(m)
    return accuracy_report(
        forecast_log,
        scan.actuals,
        home.reports,
        min_points=m.accuracy_min_points,
        interval=m.accuracy_interval,
        mae_ratio_threshold=m.accuracy_mae_ratio_threshold,
        note=note,
        window=window,
        residual=lambda joined: residual.residual_drift(joined, s, m.drift_share_threshold),
        resolution=champion_resolution(cfg, home, scan.resolution),
    )


def champion_resolution(cfg: FluxoraConfig, home: Home, data_step: Resolution) -> Resolution:
    """The step the served forecasts count in: the champion's (its registered contract; a contract
    without the field is hourly), else, before any champion, the validated data's (`data_step`)."""
    from fluxora import registry

    champion = registry.read_champion(home, cfg.train.registered_model_name) if home.has_registry else None
    tag = (champion or {}).get("tags", {}).get(registry.CONTRACT_TAG)
    if tag:
        return Resolution.parse(str(json.loads(tag).get("resolution") or "h"))
    return data_step
