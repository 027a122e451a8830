"""Webhook alerts against a real HTTP receiver on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fluxora.config import compose
from fluxora.data import io
from fluxora.errors import ConfigError
from fluxora.monitoring import alerts
from fluxora.monitoring.alerts import Alert, Webhook
from fluxora.paths import ALERTS_FILE, Home


@dataclass
class Receiver:
    """Records every POST; answers with `statuses` in turn (then 200), after `delay_s`."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0

    def bodies(self) -> list[dict[str, Any]]:
        return [p["body"] for p in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            rec.posts.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(raw)})
            time.sleep(rec.delay_s)
            code = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/fluxora"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def _closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _hook(url: str, home: Path, clock: Clock | None = None, **kw: Any) -> tuple[Webhook, list[float]]:
    waits: list[float] = []
    kw = {"retries": 2, "backoff_s": 0.5, "timeout_s": 2.0, "dedup_s": 3600.0} | kw
    hook = Webhook(url, home / ALERTS_FILE, home / "alerts.lock", clock=clock or Clock(), sleep=waits.append, **kw)
    return hook, waits


DRIFT = Alert("drift", ["series_000", "series_001"], "load drift in 2 of 3 series", {"drift_share": 0.67})


def test_alert_is_posted_as_json_with_the_secret_header(receiver: Receiver, tmp_path: Path) -> None:
    hook, _ = _hook(receiver.url, tmp_path, secret_header="X-Fluxora-Token", secret="s3cret")
    (d,) = hook.send([DRIFT], "monitor")
    assert d.status == "sent" and d.attempts == 1 and d.subjects == ["series_000", "series_001"]
    (post,) = receiver.posts
    assert post["path"] == "/hooks/fluxora"
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["headers"]["X-Fluxora-Token"] == "s3cret"
    body = post["body"]
    assert body["kind"] == "drift" and body["subjects"] == ["series_000", "series_001"]
    assert body["summary"] == "load drift in 2 of 3 series" and body["details"] == {"drift_share": 0.67}
    assert body["source"] == "monitor" and body["already_alerted"] == [] and body["id"]
    assert body["at"] == "2027-01-15T08:00:00+00:00"


def test_the_same_kind_and_subject_is_not_sent_again_within_the_interval(receiver: Receiver, tmp_path: Path) -> None:
    clock = Clock()
    first, _ = _hook(receiver.url, tmp_path, clock)
    assert first.send([DRIFT], "monitor")[0].status == "sent"
    # A separate run (a new Webhook, as a new process makes) reads what was sent from the file.
    clock.t += 1800
    again, _ = _hook(receiver.url, tmp_path, clock)
    (d,) = again.send([DRIFT], "monitor")
    assert d.status == "deduplicated" and d.suppressed == ["series_000", "series_001"]
    assert len(receiver.posts) == 1
    # A new subject is sent alone, the others named as already alerted; another kind is its own.
    wider = replace(DRIFT, subjects=["series_000", "series_001", "series_002"])
    stale = Alert("stale_features", ["series_000"], "1 of 3 series stale")
    sent = again.send([wider, stale], "monitor")
    assert [x.status for x in sent] == ["sent", "sent"]
    assert receiver.bodies()[1]["subjects"] == ["series_002"]
    assert receiver.bodies()[1]["already_alerted"] == ["series_000", "series_001"]
    assert receiver.bodies()[2]["kind"] == "stale_features"
    # Past the interval since the first, it is sent again.
    clock.t += 1801
    (late,) = _hook(receiver.url, tmp_path, clock)[0].send([DRIFT], "monitor")
    assert late.status == "sent" and receiver.bodies()[-1]["subjects"] == ["series_000", "series_001"]
    state = json.loads((tmp_path / ALERTS_FILE).read_text())
    assert state["sent_total"] == 4 and state["failed_total"] == 0


def test_transient_failures_are_retried_with_backoff(receiver: Receiver, tmp_path: Path) -> None:
    receiver.statuses = [503, 500]
    hook, waits = _hook(receiver.url, tmp_path, retries=2, backoff_s=0.5)
    (d,) = hook.send([DRIFT], "monitor")
    assert d.status == "sent" and d.attempts == 3 and waits == [0.5, 1.0]
    assert len(receiver.posts) == 3 and len({p["body"]["id"] for p in receiver.posts}) == 1  # the same alert


def test_a_refusal_is_not_retried_and_is_tried_again_next_run(receiver: Receiver, tmp_path: Path) -> None:
    receiver.statuses = [400]
    hook, waits = _hook(receiver.url, tmp_path)
    (d,) = hook.send([DRIFT], "monitor")
    assert d.status == "failed" and d.attempts == 1 and d.error == "HTTP 400 Bad Request" and waits == []
    (d,) = hook.send([DRIFT], "monitor")  # not marked sent: the next run delivers it
    assert d.status == "sent" and len(receiver.posts) == 2


def test_a_receiver_that_is_down_or_slow_fails_the_delivery_not_the_caller(receiver: Receiver, tmp_path: Path) -> None:
    hook, waits = _hook(_closed_port_url(), tmp_path, retries=1, backoff_s=0.25)
    (d,) = hook.send([DRIFT], "monitor")
    assert d.status == "failed" and d.attempts == 2 and waits == [0.25]
    assert d.error and d.error.startswith("ConnectError")
    receiver.delay_s = 1.0
    slow, _ = _hook(receiver.url, tmp_path, retries=0, timeout_s=0.2)
    (d,) = slow.send([DRIFT], "monitor")
    assert d.status == "failed" and d.error and "Timeout" in d.error
    assert json.loads((tmp_path / ALERTS_FILE).read_text())["failed_total"] == 2


def test_webhook_url_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"monitor\.webhook_url: expected an http"):
        alerts.check_url("hooks.example.com/x")
    alerts.check_url("https://hooks.example.com/x")


# --- the monitor and train steps -----------------------------------------------------------------


def _home(tmp_path: Path) -> Home:
    """30 days of real synthetic data (ending in 2024: every series is stale by now)."""
    from fluxora.config import DataConfig
    from fluxora.data.synthetic import generate

    home = Home(tmp_path / "home").ensure()
    io.write_parquet(generate(DataConfig(n_series=2, days=30)), home.validated_data)
    return home


def test_monitor_step_alerts_stale_series_once(receiver: Receiver, tmp_path: Path, monkeypatch: Any) -> None:
    from fluxora import steps

    monkeypatch.setenv(alerts.SECRET_ENV, "from-the-environment")
    home = _home(tmp_path)
    cfg = compose([f"monitor.webhook_url={receiver.url}", "monitor.webhook_secret_header=X-Token"])
    out = steps.monitor(cfg, home).outputs()
    assert [(a["kind"], a["status"]) for a in out["alerts"]] == [("stale_features", "sent")]
    (post,) = receiver.posts
    assert post["headers"]["X-Token"] == "from-the-environment"
    body = post["body"]
    assert body["kind"] == "stale_features" and body["subjects"] == ["series_000", "series_001"]
    assert body["source"] == "monitor" and body["details"]["limit_s"] == cfg.serve.max_feature_age_s
    assert all(age > 300 * 86_400 for age in body["details"]["age_s"].values())
    assert json.loads((home.monitor_metrics / "webhooks.json").read_text())["alerts_sent"] == 1

    again = steps.monitor(cfg, home).outputs()  # the next run: the same series, within the interval
    assert [a["status"] for a in again["alerts"]] == ["deduplicated"] and len(receiver.posts) == 1


def test_monitor_step_succeeds_when_the_receiver_is_down(tmp_path: Path) -> None:
    from fluxora import steps

    home = _home(tmp_path)
    down = [f"monitor.webhook_url={_closed_port_url()}", "monitor.webhook_retries=1", "monitor.webhook_backoff_s=0.05"]
    cfg = compose(down)
    out = steps.monitor(cfg, home).outputs()
    (alert,) = out["alerts"]
    assert alert["status"] == "failed" and alert["attempts"] == 2 and alert["subjects"] == ["series_000", "series_001"]
    assert (home.reports / "drift.json").is_file() and out["decision"]["reason"]  # the run's results are all there
    assert json.loads((home.monitor_metrics / "webhooks.json").read_text())["alerts_failed"] == 1
    assert json.loads((home.reports / ALERTS_FILE).read_text())["failed_total"] == 1
    # The service's /metrics counts them from the same file.
    from prometheus_client import CollectorRegistry, generate_latest

    from fluxora.api.monitoring_metrics import MonitoringCollector

    registry = CollectorRegistry()
    registry.register(MonitoringCollector(home.reports))
    text = generate_latest(registry).decode()
    assert 'fluxora_monitor_alert_deliveries_total{outcome="failed"} 1.0' in text
    assert 'fluxora_monitor_alert_deliveries_total{outcome="sent"} 0.0' in text


def test_monitor_step_refuses_a_malformed_webhook_url(tmp_path: Path) -> None:
    from fluxora import steps

    home = _home(tmp_path)
    with pytest.raises(ConfigError, match=r"monitor\.webhook_url"):
        steps.monitor(compose(["monitor.webhook_url=ftp://x"]), home)
    assert not (home.reports / "drift.json").exists()  # refused before any work


def test_a_refused_model_is_alerted(receiver: Receiver, tmp_path: Path) -> None:
    from fluxora.registry import RegisteredModel
    from fluxora.steps.train import _alert_refused

    home = Home(tmp_path).ensure()
    cfg = compose([f"monitor.webhook_url={receiver.url}"])
    model = RegisteredModel("fluxora-load-forecaster", "7", "abc123", champion=False, reason="mae 10.2 does not beat")
    _alert_refused(cfg, home, model, "mae 10.2 does not beat champion 10.0 by 2%", {"mae": 10.2, "ridge.mae": 11.0})
    (body,) = receiver.bodies()
    assert body["kind"] == "refused_model" and body["subjects"] == ["fluxora-load-forecaster v7"]
    assert body["source"] == "train" and body["details"]["metrics"] == {"mae": 10.2}
    assert "stays challenger: mae 10.2 does not beat champion" in body["summary"]


def test_monitor_alerts_from_drift_decay_and_data_age() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 2, tzinfo=UTC)
    drift = {"series_drifted": ["b", "a"], "n_columns": 5, "drifted": True, "drift_share": 0.4, "html_path": "d.html"}
    decay = {"status": "ok", "decayed": True, "mae_ratio": 1.6, "threshold": 1.0, "baseline": "naive_daily"}
    ends = {"a": now - timedelta(days=3), "b": now - timedelta(hours=5), "c": now - timedelta(days=10)}
    raised = alerts.monitor_alerts(drift, decay, ends, now, 2 * 86_400.0, "retrain: load drift")
    assert [(a.kind, a.subjects) for a in raised] == [
        ("drift", ["b", "a"]),
        ("accuracy_decay", ["realized_accuracy"]),
        ("stale_features", ["c", "a"]),  # oldest first; b is 5 hours old
    ]
    assert raised[0].details["retrain_signal"] is True and raised[0].details["decision"] == "retrain: load drift"
    assert raised[1].summary == "realized MAE is 1.60x naive_daily (threshold 1.0)"
    assert raised[2].summary == (
        "2 of 3 series have no data newer than 48 h (serve.max_feature_age_s); the oldest is 10.0 days old"
    )
    quiet = alerts.monitor_alerts(
        {"series_drifted": []}, {"status": "insufficient_data"}, ends, now, 0.0, "no"
    )  # 0: no staleness alerts
    assert quiet == []
