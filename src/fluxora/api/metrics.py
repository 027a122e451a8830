"""Prometheus metrics, one registry per app (no module-level mutable state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._served: str | None = None
        # Labelled children by label values: `labels(...)` validates and locks on every call,
        # and the request path would call it three times per request. Children are never removed.
        self._children: dict[tuple[str, ...], Any] = {}
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
        self.weather_fallback_steps = Counter(
            "fluxora_weather_fallback_steps_total",
            "Forecast steps of issued-weather models served with persistence for want of a forecast",
            ["endpoint"],
            registry=r,
        )
        self.without_weather_forecast = Counter(
            "fluxora_forecasts_without_weather_forecast_total",
            "Forecasts of issued-weather models served without any forecast step (none, or stale)",
            ["endpoint"],
            registry=r,
        )
        self.rate_limited = Counter("fluxora_rate_limited_total", "Requests refused with 429", registry=r)
        self.log_dropped = Counter("fluxora_forecast_log_dropped_total", "Forecast-log rows not written", registry=r)
        self.log_replayed = Counter(
            "fluxora_forecast_log_replayed_total",
            "Forecast-log rows written from the write-ahead file of an earlier process that died",
            registry=r,
        )
        self.registry_up = Gauge(
            "fluxora_registry_up", "1 when the last read of the model registry worked, 0 during an outage", registry=r
        )
        self.registry_last_success = Gauge(
            "fluxora_registry_last_success_timestamp_seconds",
            "Unix time of the last successful read of the model registry (0: none yet)",
            registry=r,
        )

        self.stale_series = Gauge(
            "fluxora_stale_series",
            "Series whose latest online features are older than serve.max_feature_age_s",
            registry=r,
        )
        self.feature_age_max = Gauge(
            "fluxora_feature_age_max_seconds",
            "Age (now - origin) of the oldest series' latest online features (0: no series known)",
            registry=r,
        )
        self.stale_served = Counter(
            "fluxora_stale_forecasts_total",
            "Series forecasts served from features older than serve.max_feature_age_s",
            ["endpoint"],
            registry=r,
        )
        self.stale_refused = Counter(
            "fluxora_stale_refused_total",
            "Requests refused with 503 because features were older than serve.max_feature_age_hard_s",
            registry=r,
        )

    def watch_freshness(self, now: Callable[[], Any]) -> None:
        """Read the stale-series count and the oldest age at each scrape from `now()` (a `Staleness`)."""
        self.stale_series.set_function(lambda: float(len(now().stale)))
        self.feature_age_max.set_function(lambda: now().max_age_s or 0.0)

    def served_stale(self, endpoint: str, n: int) -> None:
        child = self._children.get(("stale", endpoint))
        if child is None:
            child = self._children[("stale", endpoint)] = self.stale_served.labels(endpoint=endpoint)
        child.inc(n)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request: counted by route and status, its latency observed by route."""
        children = self._children
        counter = children.get(("requests", method, route, str(status)))
        if counter is None:
            counter = children[("requests", method, route, str(status))] = self.requests.labels(
                method=method, route=route, status=str(status)
            )
        histogram = children.get(("latency", method, route))
        if histogram is None:
            histogram = children[("latency", method, route)] = self.latency.labels(method=method, route=route)
        counter.inc()
        histogram.observe(seconds)

    def predicted(self, endpoint: str, model_version: str, n: int) -> None:
        """`n` series forecasts served by `endpoint` from `model_version`."""
        child = self._children.get(("predictions", endpoint, model_version))
        if child is None:
            child = self._children[("predictions", endpoint, model_version)] = self.predictions.labels(
                endpoint=endpoint, model_version=model_version
            )
        child.inc(n)

    def weather_fallback(self, endpoint: str, steps: int, forecasts: int) -> None:
        if steps:
            self.weather_fallback_steps.labels(endpoint).inc(steps)
        if forecasts:
            self.without_weather_forecast.labels(endpoint).inc(forecasts)

    def watch_registry(self, up: Callable[[], bool | None], last_success: Callable[[], float | None]) -> None:
        """Read the registry's state at each scrape from these callables (the model store's)."""
        self.registry_up.set_function(lambda: 1.0 if up() else 0.0)
        self.registry_last_success.set_function(lambda: last_success() or 0.0)

    def set_model(self, version: str) -> None:
        if self._served is not None and self._served != version:
            self.model_version.labels(version=self._served).set(0)  # (label removal breaks in multiprocess mode)
        self.model_version.labels(version=version).set(1)
        self._served = version

    def render(self) -> bytes:
        return generate_latest(self.registry)
