"""Prometheus metrics, one registry per app (no module-level mutable state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._served: str | None = None
        r = self.registry
        self.requests = Counter(
            "fluxora_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "fluxora_http_request_duration_seconds",
            "Request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_version = Gauge(
            "fluxora_model_info", "The model version being served (value 1)", ["version"], registry=r
        )
        self.predictions = Counter(
            "fluxora_predictions_total", "Series forecasts served", ["endpoint", "model_version"], registry=r
        )
        self.model_events = Counter(
            "fluxora_model_events_total", "Model versions served or refused (load failures)", ["event"], registry=r
        )
        self.rate_limited = Counter("fluxora_rate_limited_total", "Requests refused with 429", registry=r)
        self.log_dropped = Counter("fluxora_forecast_log_dropped_total", "Forecast-log rows not written", registry=r)

    def set_model(self, version: str) -> None:
        if self._served is not None and self._served != version:
            self.model_version.labels(version=self._served).set(0)  # (label removal breaks in multiprocess mode)
        self.model_version.labels(version=version).set(1)
        self._served = version

    def render(self) -> bytes:
        return generate_latest(self.registry)
