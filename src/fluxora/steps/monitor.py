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
    data = io.read_parquet(home.validated_data)
    # First, before anything is written: an unreachable forecast-log database fails the step whole.
    forecast_log, log_note, log_window = _forecast_log(cfg, home, data)
    drift, per_series, windows = _drift(cfg, home, data)
    series_path = io.atomic_write_text(
        home.drift_series, json.dumps({"windows": windows, "series": per_series}, indent=2, default=str)
    )
    files = [Path(p) for p in (drift["html_path"], drift["json_path"], drift["evidently_json_path"]) if p]

    accuracy = _realized_accuracy(cfg, home, forecast_log, data, log_note, log_window)
    files += [Path(accuracy["html_path"]), Path(accuracy["json_path"]), series_path]

    state = loop.load_state(home.reports)
    since = pd.Timestamp(state["data_end"]) if "data_end" in state else None
    new_rows = int((data[TIMESTAMP] > since).sum()) if since is not None else len(data)
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
        drift, accuracy["decay"], _data_end(data), datetime.now(UTC), cfg.serve.max_feature_age_s, decision.reason
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


def _data_end(data: pd.DataFrame) -> dict[str, datetime]:
    """Series -> its latest timestamp (UTC): the origin its online features have once materialized."""
    from fluxora.data.schema import SERIES_ID

    if not len(data):
        return {}
    ends = pd.to_datetime(data[TIMESTAMP], utc=True).groupby(data[SERIES_ID]).max()
    return {str(s): t.to_pydatetime() for s, t in ends.items()}


def _drift(cfg: FluxoraConfig, home: Home, data: pd.DataFrame) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Every series judged against its own history, and the Evidently report of it."""
    from fluxora.monitoring import effect
    from fluxora.monitoring.drift import drift_report

    m = cfg.monitor
    s = effect.settings(m)
    # The model's calendar; the synthetic sample has its own holidays.
    country = cfg.features.holiday_country or (cfg.data.holidays_country if cfg.data.source == "synthetic" else "")
    end, per_series = effect.panel_effects(data, s, holidays_country=country, timezone=cfg.features.timezone)
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
    cfg: FluxoraConfig, home: Home, data: pd.DataFrame
) -> tuple[pd.DataFrame, str | None, dict[str, Any]]:
    """The service's forecast log for the accuracy window (forecasts served after the latest
    actual minus `monitor.accuracy_days`)."""
    from fluxora.monitoring import accuracy

    accuracy.check_interval(cfg.monitor.accuracy_interval)  # a config error, before anything is written
    stamps = pd.to_datetime(data[TIMESTAMP], utc=True) if len(data) else pd.Series(dtype="datetime64[ns, UTC]")
    end = stamps.max() if len(stamps) else pd.Timestamp.now(tz="UTC")
    after = (end - pd.Timedelta(days=cfg.monitor.accuracy_days)).to_pydatetime()
    url = cfg.infra.database_url or home.service_database_url  # the service's, as it would use it
    log, note = accuracy.load_log(url, served_after=after)
    return log, note, {"served_after": after.isoformat(), "actuals_end": str(end) if len(stamps) else None}


def _realized_accuracy(
    cfg: FluxoraConfig,
    home: Home,
    forecast_log: pd.DataFrame,
    data: pd.DataFrame,
    note: str | None,
    window: dict[str, Any],
) -> dict[str, Any]:
    from fluxora.monitoring import effect, residual
    from fluxora.monitoring.accuracy import accuracy_report

    m = cfg.monitor
    s = effect.settings(m)
    return accuracy_report(
        forecast_log,
        data,
        home.reports,
        min_points=m.accuracy_min_points,
        interval=m.accuracy_interval,
        mae_ratio_threshold=m.accuracy_mae_ratio_threshold,
        note=note,
        window=window,
        residual=lambda joined: residual.residual_drift(joined, s, m.drift_share_threshold),
        resolution=champion_resolution(cfg, home, data),
    )


def champion_resolution(cfg: FluxoraConfig, home: Home, data: pd.DataFrame) -> Resolution:
    """The step the served forecasts count in: the champion's (its registered contract; a contract
    without the field is hourly), else, before any champion, the validated data's."""
    from fluxora import registry
    from fluxora.data.frames import data_resolution

    champion = registry.read_champion(home, cfg.train.registered_model_name) if home.has_registry else None
    tag = (champion or {}).get("tags", {}).get(registry.CONTRACT_TAG)
    if tag:
        return Resolution.parse(str(json.loads(tag).get("resolution") or "h"))
    return data_resolution(data)
