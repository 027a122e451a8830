"""Helpers for the service tests: settings with test-friendly limits, keys and tokens made
through the service's own database (not mocked)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from fluxora.api.deps import Services
from fluxora.api.settings import ServiceSettings
from fluxora.config import FluxoraConfig
from fluxora.paths import Home
from fluxora.servicedb import accounts


def settings_for(cfg: FluxoraConfig, home: Home, **update: Any) -> ServiceSettings:
    """The service's settings for `home`; rate limits off, no polling and no staleness limit
    (the test data end in 2024, so every state is years old: tests/api/test_staleness.py sets
    the limits) unless asked for."""
    base = ServiceSettings.from_config(cfg, home)
    quiet = {"rate_limit_per_minute": 0, "poll_interval_s": 0.0, "max_feature_age_s": 0.0}
    return base.model_copy(update={**quiet, **update})


def services(app: FastAPI) -> Services:
    svc: Services = app.state.services
    return svc


def make_key(app: FastAPI, role: str = "reader", series: list[str] | None = None, name: str = "test") -> str:
    with services(app).sessions() as session:
        _, key = accounts.create_key(session, name, role, series)
    return key


def key_headers(app: FastAPI, role: str = "reader", series: list[str] | None = None) -> dict[str, str]:
    return {"X-API-Key": make_key(app, role, series)}
