"""Key monitoring figures as Prometheus metrics, read from the latest reports at scrape time.

The service registers `MonitoringCollector` on its metrics registry. It reads only the JSON files
the monitor step writes (drift.json, accuracy.json, decisions.jsonl) with the standard library:
no pandas, Evidently, Prefect or training code enters the serving process. A missing or
half-written report leaves its metrics out of the scrape; a scrape never fails because of it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fluxora.paths import ACCURACY_REPORT, ALERTS_FILE, DECISIONS_FILE, DRIFT_REPORT

log = logging.getLogger("fluxora.monitoring")  # the name its warnings have always had


class MonitoringCollector(Collector):
    """Gauges from the monitoring reports in `reports` (FLUXORA_HOME/reports)."""

    def __init__(self, reports: Path) -> None:
        self._reports = Path(reports)
        self._decisions_cache: tuple[tuple[int, int], dict[str, Any]] | None = None

    def describe(self) -> list[Metric]:
        return []  # metrics depend on which reports exist; skip the registry's collect-at-register

    def collect(self) -> Iterator[Metric]:
        drift = self._json(f"{DRIFT_REPORT}.json")
        accuracy = self._json(f"{ACCURACY_REPORT}.json")
        decisions = self._decisions()
        yield from _drift_metrics(drift)
        yield from _accuracy_metrics(accuracy)
        yield from _decision_metrics(decisions)
        yield from _alert_metrics(self._json(ALERTS_FILE))
        stamps = [
            s
            for s in (
                _stamp((drift or {}).get("generated_at")),
                _stamp((accuracy or {}).get("generated_at")),
                _stamp((decisions.get("last") or {}).get("at")),
            )
            if s is not None
        ]
        if stamps:
            yield GaugeMetricFamily(
                "fluxora_monitor_last_run_timestamp_seconds",
                "Unix time of the latest monitoring run (newest report or decision)",
                value=max(stamps),
            )

    def _json(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self._reports / name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("metrics: cannot read %s: %s", name, exc)
            return None
        return data if isinstance(data, dict) else None

    def _decisions(self) -> dict[str, Any]:
        """Counts of retrain decisions by outcome and the last one; re-read only when the file changed."""
        path = self._reports / DECISIONS_FILE
        try:
            st = os.stat(path)
        except OSError:
            return {}
        key = (st.st_mtime_ns, st.st_size)
        if self._decisions_cache is not None and self._decisions_cache[0] == key:
            return self._decisions_cache[1]
        counts = {"true": 0, "false": 0}
        last: dict[str, Any] | None = None
        try:
            with path.open() as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue  # a line being appended right now
                    if isinstance(row, dict):
                        counts["true" if row.get("retrain") else "false"] += 1
                        last = row
        except OSError as exc:
            log.warning("metrics: cannot read %s: %s", DECISIONS_FILE, exc)
            return {}
        result = {"counts": counts, "last": last}
        self._decisions_cache = (key, result)
        return result


def _drift_metrics(drift: dict[str, Any] | None) -> Iterator[Metric]:
    if drift is None:
        return
    ok = drift.get("status", "ok") == "ok"
    yield _gauge("fluxora_monitor_drift_ok", "1 if the latest drift report had enough data, else 0", float(ok))
    if ok and _is_number(drift.get("drift_share")):
        yield _gauge(
            "fluxora_monitor_drift_share", "Share of columns that drifted (latest report)", drift["drift_share"]
        )
        yield _gauge(
            "fluxora_monitor_drifted",
            "1 if the dataset drifted in the latest report",
            float(bool(drift.get("drifted"))),
        )


def _accuracy_metrics(acc: dict[str, Any] | None) -> Iterator[Metric]:
    if acc is None:
        return
    yield _gauge(
        "fluxora_monitor_accuracy_ok",
        "1 if enough served forecasts matured for realized accuracy",
        float(acc.get("status") == "ok"),
    )
    points = acc.get("points") or {}
    g = GaugeMetricFamily("fluxora_monitor_forecast_points", "Served forecast points by status", labels=["status"])
    for status in ("matured", "pending", "missing"):
        if _is_number(points.get(status)):
            g.add_metric([status], points[status])
    yield g
    overall = acc.get("overall") or {}
    if acc.get("status") == "ok":
        for key, name, doc in (
            (
                "mae",
                "fluxora_monitor_realized_mae",
                "Realized MAE of served forecasts, all matured points (load units)",
            ),
            ("mape", "fluxora_monitor_realized_mape_percent", "Realized MAPE of served forecasts, percent"),
        ):
            if _is_number(overall.get(key)):
                yield _gauge(name, doc, overall[key])
        interval = acc.get("interval") or []
        if _is_number(overall.get("coverage")) and len(interval) == 2:
            g = GaugeMetricFamily(
                "fluxora_monitor_interval_coverage",
                "Share of matured actuals inside the logged quantile interval",
                labels=["lower", "upper", "nominal"],
            )
            g.add_metric(
                [f"{interval[0]:g}", f"{interval[1]:g}", f"{interval[1] - interval[0]:g}"], overall["coverage"]
            )
            yield g
    decay = acc.get("decay") or {}
    if decay.get("status") == "ok" and _is_number(decay.get("mae_ratio")):
        yield _gauge(
            "fluxora_monitor_mae_ratio_to_naive",
            "Realized MAE over the better seasonal naive's MAE on the same targets (retrain above the threshold)",
            decay["mae_ratio"],
        )
        yield _gauge(
            "fluxora_monitor_accuracy_decayed",
            "1 if realized accuracy decayed past the threshold",
            float(bool(decay.get("decayed"))),
        )


def _decision_metrics(decisions: dict[str, Any]) -> Iterator[Metric]:
    counts = decisions.get("counts")
    if not counts:
        return
    c = CounterMetricFamily(
        "fluxora_monitor_retrain_decisions", "Retrain decisions recorded by the monitoring loop", labels=["retrain"]
    )
    for outcome, n in counts.items():
        c.add_metric([outcome], n)
    yield c


def _alert_metrics(state: dict[str, Any] | None) -> Iterator[Metric]:
    """Webhook deliveries (alerts.json, written by `fluxora.monitoring.alerts`) by outcome."""
    if state is None:
        return
    c = CounterMetricFamily(
        "fluxora_monitor_alert_deliveries", "Webhook alert deliveries by outcome", labels=["outcome"]
    )
    for outcome, key in (("sent", "sent_total"), ("failed", "failed_total")):
        if _is_number(state.get(key)):
            c.add_metric([outcome], state[key])
    yield c


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _stamp(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
