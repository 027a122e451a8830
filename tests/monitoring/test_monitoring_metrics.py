"""Key monitoring figures on the service's /metrics: the collector reads the monitor step's
reports at scrape time (real monitor step, real service)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_accuracy import _monitor_home

from fluxora.paths import DECISIONS_FILE


def _scrape(reports: Path) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    from fluxora.api.monitoring_metrics import MonitoringCollector

    registry = CollectorRegistry()
    registry.register(MonitoringCollector(reports))
    return generate_latest(registry).decode()


def test_collector_without_reports_or_with_broken_ones(tmp_path: Path) -> None:
    assert "fluxora_monitor" not in _scrape(tmp_path / "nothing")
    (tmp_path / "drift.json").write_text("{not json")
    (tmp_path / "accuracy.json").write_text("[]")
    (tmp_path / DECISIONS_FILE).write_text('{"retrain": true, "at": "2026-11-26T10:00:00+00:00"}\n{"retr')
    text = _scrape(tmp_path)
    assert 'fluxora_monitor_retrain_decisions_total{retrain="true"} 1.0' in text
    assert "fluxora_monitor_drift_share" not in text and "fluxora_monitor_realized_mae" not in text


def test_metrics_endpoint_shows_monitoring_gauges(tmp_path: Path) -> None:
    """The real monitor step writes the reports; the real service exposes them on /metrics."""
    from fastapi.testclient import TestClient

    from fluxora import steps
    from fluxora.api.app import create_app
    from fluxora.api.settings import ServiceSettings

    home, cfg = _monitor_home(tmp_path, error=60.0)
    out = steps.monitor(cfg, home).outputs()
    settings = ServiceSettings(
        home=home.root, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", poll_interval_s=0, rate_limit_per_minute=0
    )
    with TestClient(create_app(settings)) as c:
        text = c.get("/metrics").text
    acc = out["accuracy"]
    assert _value(text, "fluxora_monitor_realized_mae") == pytest.approx(acc["mae"])
    assert _value(text, "fluxora_monitor_mae_ratio_to_naive") == pytest.approx(acc["decay"]["mae_ratio"])
    assert _value(text, "fluxora_monitor_accuracy_decayed") == 1.0
    assert _value(text, 'fluxora_monitor_forecast_points{status="matured"}') == acc["points"]["matured"]
    assert _value(text, 'fluxora_monitor_forecast_points{status="pending"}') == acc["points"]["pending"]
    assert "fluxora_monitor_interval_coverage" not in text  # no quantiles were logged
    if out["status"] == "ok":
        assert _value(text, "fluxora_monitor_drift_share") == pytest.approx(out["drift_share"])
        assert _value(text, "fluxora_monitor_drifted") == float(out["drifted"])
    assert _value(text, 'fluxora_monitor_retrain_decisions_total{retrain="true"}') == 1.0
    last = _value(text, "fluxora_monitor_last_run_timestamp_seconds")
    assert abs(last - datetime.now(UTC).timestamp()) < 600


def test_collector_reports_coverage_and_counts_decisions(tmp_path: Path) -> None:
    (tmp_path / "accuracy.json").write_text(
        json.dumps(
            {
                "status": "ok",
                "interval": [0.1, 0.9],
                "points": {"matured": 30, "pending": 5, "missing": 1},
                "overall": {"mae": 2.5, "mape": 4.0, "coverage": 0.75},
                "decay": {"status": "ok", "mae_ratio": 0.8, "decayed": False},
                "generated_at": "2026-11-26T12:00:00+00:00",
            }
        )
    )
    lines = [{"retrain": r, "at": f"2026-11-26T1{i}:00:00+00:00"} for i, r in enumerate([False, True, False])]
    (tmp_path / DECISIONS_FILE).write_text("".join(json.dumps(x) + "\n" for x in lines))
    text = _scrape(tmp_path)
    assert _value(text, 'fluxora_monitor_interval_coverage{lower="0.1",nominal="0.8",upper="0.9"}') == 0.75
    assert _value(text, "fluxora_monitor_realized_mape_percent") == 4.0
    assert _value(text, 'fluxora_monitor_retrain_decisions_total{retrain="false"}') == 2.0
    assert (
        _value(text, "fluxora_monitor_last_run_timestamp_seconds") == datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()
    )
    with (tmp_path / DECISIONS_FILE).open("a") as f:  # a new decision is seen at the next scrape
        f.write(json.dumps({"retrain": True, "at": "2026-11-26T13:00:00+00:00"}) + "\n")
    assert _value(_scrape(tmp_path), 'fluxora_monitor_retrain_decisions_total{retrain="true"}') == 2.0


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")
