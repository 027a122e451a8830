"""Alerts that reach someone: a JSON POST to `monitor.webhook_url` on load drift, accuracy
decay, stale features and models the promotion gate refused.

Each alert has a kind and subjects (series ids, model versions). A subject already sent for
the same kind within `monitor.webhook_dedup_hours` is left out; an alert whose subjects were all
sent recently is not posted at all. What was sent is kept in `FLUXORA_HOME/reports/alerts.json`
(written atomically under an inter-process lock), so separate runs, processes and deployments
de-duplicate alike. Transient failures (no connection, timeout, 429, 5xx) are retried with
exponential backoff; other answers (4xx) are not. A delivery that fails is logged and counted
in that file and in the step's result, and never fails the run that raised the alert: its
subjects are not marked sent, so the next run tries again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fluxora.config import MonitorConfig
from fluxora.errors import ConfigError, first_line
from fluxora.paths import ALERTS_FILE, Home

log = logging.getLogger("fluxora.monitoring")
SECRET_ENV = "FLUXORA_WEBHOOK_SECRET"
KINDS = ("drift", "accuracy_decay", "stale_features", "refused_model")
MAX_BACKOFF_S = 60.0
LOCK_TIMEOUT_S = 300.0  # waiting for another process's delivery (its retries) to finish
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Alert:
    kind: str  # one of KINDS
    subjects: list[str]  # what it is about: series ids, a model version, "realized_accuracy"
    summary: str  # one line a person reads
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """What became of one alert."""

    kind: str
    status: str  # sent | deduplicated | failed
    subjects: list[str]  # posted (or, failed, meant to be)
    suppressed: list[str]  # left out: sent within the de-duplication interval
    attempts: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Webhook:
    """Posts alerts to one URL. `from_config` makes it from `monitor.*`; None when no URL is set."""

    def __init__(
        self,
        url: str,
        state: Path,
        lock: Path,
        *,
        secret_header: str = "",
        secret: str | None = None,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 1.0,
        dedup_s: float = 86_400.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self._state, self._lock = state, lock
        self._headers = {"Content-Type": "application/json", "User-Agent": "fluxora-alerts"}
        if secret_header and secret:
            self._headers[secret_header] = secret
        self._timeout_s, self._retries, self._backoff_s = timeout_s, max(0, retries), backoff_s
        self._dedup_s = dedup_s
        self._clock, self._sleep = clock, sleep

    @classmethod
    def from_config(cls, m: MonitorConfig, home: Home) -> Webhook | None:
        if not m.webhook_url:
            return None
        check_url(m.webhook_url)
        return cls(
            m.webhook_url,
            home.reports / ALERTS_FILE,
            home.lock_file("alerts"),
            secret_header=m.webhook_secret_header,
            secret=os.environ.get(SECRET_ENV) or None,
            timeout_s=m.webhook_timeout_s,
            retries=m.webhook_retries,
            backoff_s=m.webhook_backoff_s,
            dedup_s=m.webhook_dedup_hours * 3600.0,
        )

    def send(self, alerts: Sequence[Alert], source: str) -> list[Delivery]:
        """Post each alert with its subjects not sent within the interval. Never raises for a
        failed delivery; `source` names what raised them (e.g. `monitor`, `train`)."""
        from filelock import Timeout

        out = []
        for alert in alerts:
            if alert.kind not in KINDS:
                raise ValueError(f"unknown alert kind {alert.kind!r}; expected one of {KINDS}")
            try:
                out.append(self._send_one(alert, source))
            except Timeout:  # another process has been delivering for longer than LOCK_TIMEOUT_S
                log.warning("alert %s not sent: %s stayed locked for %.0f s", alert.kind, self._lock, LOCK_TIMEOUT_S)
                out.append(Delivery(alert.kind, "failed", list(alert.subjects), [], 0, "alert state locked"))
        return out

    def _send_one(self, alert: Alert, source: str) -> Delivery:
        """Under the lock: read what was sent, post what is new, record it."""
        now = self._clock()
        with self._locked():
            state = self._read()
            sent = state["sent"]
            fresh = [s for s in alert.subjects if now - sent.get(f"{alert.kind}|{s}", float("-inf")) >= self._dedup_s]
            old = [s for s in alert.subjects if s not in fresh]
            if not fresh and alert.subjects:
                return Delivery(alert.kind, "deduplicated", [], old)
            attempts, error = self._post(self._body(alert, fresh, old, source, now))
            if error is None:
                sent.update({f"{alert.kind}|{s}": now for s in fresh})
                state["sent_total"] += 1
            else:
                state["failed_total"] += 1
                log.warning("alert %s (%s) not delivered to the webhook: %s", alert.kind, alert.summary, error)
            # Entries older than the interval can never suppress again: drop them.
            state["sent"] = {k: t for k, t in sent.items() if now - t < self._dedup_s}
            self._write(state)
        return Delivery(alert.kind, "sent" if error is None else "failed", fresh, old, attempts, error)

    def _body(self, alert: Alert, fresh: list[str], old: list[str], source: str, now: float) -> dict[str, Any]:
        at = datetime.fromtimestamp(now, tz=UTC).isoformat()
        ident = hashlib.sha256(json.dumps([alert.kind, fresh, at]).encode()).hexdigest()[:16]
        return {
            "id": ident,
            "kind": alert.kind,
            "subjects": fresh,
            "already_alerted": old,  # also affected, but sent within the de-duplication interval
            "summary": alert.summary,
            "details": alert.details,
            "at": at,
            "source": source,
            "host": socket.gethostname(),
        }

    def _post(self, body: dict[str, Any]) -> tuple[int, str | None]:
        """(attempts made, None or why the last one failed)."""
        import httpx

        payload = json.dumps(body, default=str, allow_nan=False).encode()
        error: str | None = None
        attempt = 0
        with httpx.Client(timeout=self._timeout_s, follow_redirects=False) as client:
            for attempt in range(1, self._retries + 2):
                try:
                    response = client.post(self.url, content=payload, headers=self._headers)
                except httpx.InvalidURL as exc:
                    return attempt, f"invalid webhook URL: {first_line(exc)}"
                except httpx.HTTPError as exc:  # refused, unreachable, timed out: transient
                    error = f"{type(exc).__name__}: {first_line(exc)}"
                else:
                    if response.is_success:
                        return attempt, None
                    error = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
                    if response.status_code not in TRANSIENT_STATUS:
                        return attempt, error  # the receiver refuses this request: retrying will not help
                if attempt <= self._retries:
                    self._sleep(min(MAX_BACKOFF_S, self._backoff_s * 2 ** (attempt - 1)))
        return attempt, error

    def _locked(self) -> Any:
        from filelock import FileLock

        self._lock.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self._lock), timeout=LOCK_TIMEOUT_S)

    def _read(self) -> dict[str, Any]:
        empty: dict[str, Any] = {"sent": {}, "sent_total": 0, "failed_total": 0}
        try:
            data = json.loads(self._state.read_text())
        except FileNotFoundError:
            return empty
        except (OSError, ValueError) as exc:  # a damaged file costs at most a repeated alert
            log.warning("alerts: cannot read %s (%s); starting afresh", self._state, exc)
            return empty
        return empty | data if isinstance(data, dict) else empty

    def _write(self, state: dict[str, Any]) -> None:
        from fluxora.data.io import atomic_write_text

        self._state.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self._state, json.dumps(state, indent=2, sort_keys=True))


def check_url(url: str) -> None:
    """ConfigError unless `url` is an http(s) URL with a host."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"invalid configuration: monitor.webhook_url: expected an http(s) URL, got {url!r}")


def send(m: MonitorConfig, home: Home, alerts: Sequence[Alert], source: str) -> list[Delivery]:
    """Send `alerts` through the configured webhook; [] when none is configured or nothing to say.
    Never raises because of the receiver, or of anything else once the alerts are made: a run's
    results matter more than its alerts (it is logged, and the next run tries again)."""
    hook = Webhook.from_config(m, home)
    if hook is None or not alerts:
        return []
    try:
        return hook.send(alerts, source)
    except Exception as exc:  # e.g. the state file's folder not writable
        log.warning("alerts not sent: %s", first_line(exc))
        return [Delivery(a.kind, "failed", list(a.subjects), [], 0, first_line(exc)) for a in alerts]


def monitor_alerts(
    drift: dict[str, Any],
    decay: dict[str, Any],
    data_end: dict[str, datetime],
    now: datetime,
    max_age_s: float,
    decision_reason: str,
) -> list[Alert]:
    """The alerts a monitoring run raises: load drift per series, realized-accuracy decay, and
    series whose latest data (what the online store is built from) is older than `max_age_s`
    (`serve.max_feature_age_s`; 0: no staleness alerts)."""
    alerts = []
    if drifted := list(drift.get("series_drifted") or []):
        alerts.append(
            Alert(
                "drift",
                drifted,
                f"load drift in {len(drifted)} of {drift.get('n_columns')} series against their own history",
                {
                    "retrain_signal": bool(drift.get("drifted")),
                    "drift_share": drift.get("drift_share"),
                    "report": drift.get("html_path") or drift.get("json_path"),
                    "decision": decision_reason,
                },
            )
        )
    if decay.get("status") == "ok" and decay.get("decayed"):
        alerts.append(
            Alert(
                "accuracy_decay",
                ["realized_accuracy"],
                f"realized MAE is {decay.get('mae_ratio'):.2f}x {decay.get('baseline') or 'seasonal naive'} "
                f"(threshold {decay.get('threshold')})",
                {k: decay.get(k) for k in ("mae_ratio", "threshold", "baseline")} | {"decision": decision_reason},
            )
        )
    if max_age_s > 0:
        ages = {s: (now - end).total_seconds() for s, end in data_end.items()}
        stale = sorted((s for s, a in ages.items() if a > max_age_s), key=lambda s: -ages[s])
        if stale:
            alerts.append(
                Alert(
                    "stale_features",
                    stale,
                    f"{len(stale)} of {len(ages)} series have no data newer than {max_age_s / 3600:g} h "
                    f"(serve.max_feature_age_s); the oldest is {ages[stale[0]] / 86_400:.1f} days old",
                    {"age_s": {s: round(ages[s], 1) for s in stale[:100]}, "limit_s": max_age_s},
                )
            )
    return alerts
