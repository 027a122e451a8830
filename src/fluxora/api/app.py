"""`create_app(settings)`: the FastAPI service. The lifespan migrates the database, loads the
champion, starts the alias poller and the forecast-log writer, and stops them in reverse."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from fluxora import servicedb
from fluxora.api.auth import KeyVerifier
from fluxora.api.deps import Services
from fluxora.api.forecast_cache import ForecastCache
from fluxora.api.forecast_log import ForecastLogWriter
from fluxora.api.freshness import Freshness
from fluxora.api.metrics import Metrics
from fluxora.api.middleware import DOCS_ASSETS, ServiceMiddleware
from fluxora.api.model_store import ModelStore
from fluxora.api.monitoring_metrics import MonitoringCollector
from fluxora.api.online import OnlineFeatures
from fluxora.api.ratelimit import LoginThrottle, make_limiter
from fluxora.api.rendering import validation_error
from fluxora.api.routes import auth, forecast, health, keys, models
from fluxora.api.settings import ServiceSettings
from fluxora.errors import FluxoraError, first_line
from fluxora.models.native import import_xgboost_without_sklearn
from fluxora.paths import Home
from fluxora.servicedb.history import ModelEvent, ModelEventLog

log = logging.getLogger("fluxora.api")
# While the event loop wants the GIL, a background thread (the forecast-log writer, the alias
# poller) keeps it at most this long; CPython's default is 5 ms. Measured at 800 req/s with
# the load of benchmarks/serving.py, three runs each: with the default and forecast-log
# batches every 1 s, p99 was 7-42 ms; 0.5 ms alone gave 4-19 ms, batches every 0.2 s alone
# 3-10 ms, both 2.5-3.4 ms (1.8-2.5 ms with no log at all).
GIL_SWITCH_INTERVAL_S = 0.0005


class _ProcessTuning:
    """Process-wide settings for as long as at least one service runs in the process (tests
    run several, overlapping): the GIL switch interval above, and the start-up objects frozen
    out of the garbage collector. Start-up leaves ~375k long-lived objects (Feast, MLflow,
    the model); a full collection scans them all (80-220 ms here) and would stall every
    request in flight. Collected once, then frozen, they are skipped from then on. Whatever
    was set before (another freeze, e.g. by a pre-fork server) is left as it was."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._switch = 0.0
        self._froze = False

    @contextmanager
    def serving(self) -> Iterator[None]:
        with self._lock:
            if self._running == 0:
                self._switch = sys.getswitchinterval()
                sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
                self._froze = gc.get_freeze_count() == 0
                if self._froze:
                    gc.collect()
                    gc.freeze()
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    sys.setswitchinterval(self._switch)
                    if self._froze:
                        gc.unfreeze()


PROCESS_TUNING = _ProcessTuning()


def build_services(settings: ServiceSettings) -> Services:
    """Wire the service's parts. Refuses (ConfigError) an unsafe production configuration."""
    settings.check()
    secret = settings.signing_secret()
    import_xgboost_without_sklearn()
    metrics = Metrics()
    metrics.registry.register(MonitoringCollector(Home(settings.home).reports))  # reads report JSON at scrape

    def on_event(event: ModelEvent) -> None:
        metrics.model_events.labels(event=event.event).inc()
        if event.event == "served":
            metrics.set_model(event.version)

    engine = servicedb.make_engine(settings.sqlalchemy_url)
    sessions = servicedb.sessions(engine)
    # The lifespan migrates before it loads the champion, so `model_events` exists by the first event.
    model_events = ModelEventLog(engine)
    store = ModelStore(settings, on_event=on_event, recorder=model_events.record)
    metrics.watch_registry(lambda: store.registry.up, lambda: store.registry.last_success)
    freshness = Freshness(settings.max_feature_age_s, settings.max_feature_age_hard_s)
    metrics.watch_freshness(freshness.now)
    return Services(
        settings=settings,
        store=store,
        online=OnlineFeatures(Home(settings.home)),
        engine=engine,
        sessions=sessions,
        keys=KeyVerifier(sessions, settings.key_cache_s),
        secret=secret,
        limiter=make_limiter(settings.rate_limit_per_minute, settings.rate_limit_burst, settings.redis_url),
        login_throttle=LoginThrottle(
            settings.login_failures_per_user,
            settings.login_failures_per_address,
            settings.login_window_s,
            settings.redis_url,
        ),
        metrics=metrics,
        forecast_log=ForecastLogWriter(
            engine,
            settings.log_flush_s,
            on_drop=metrics.log_dropped.inc,
            wal_dir=settings.forecast_log_wal,
            on_replay=metrics.log_replayed.inc,
        ),
        forecasts=ForecastCache(settings.forecast_cache_entries),
        model_events=model_events,
        freshness=freshness,
    )


def create_app(settings: ServiceSettings) -> FastAPI:
    """Build the service. A missing champion leaves it running but not ready (503), never crashed."""
    svc = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        servicedb.migrate(svc.engine)
        svc.forecast_log.start()  # first writes what a killed predecessor left in the write-ahead files
        try:
            loaded = svc.store.load_champion()
            svc.online.warm(loaded.forecaster.contract.feature_service, loaded.forecaster.contract.state_features)
            svc.refresh_freshness(force=True)  # readiness and /metrics know every series' age from the start
        except FluxoraError as exc:
            log.warning("starting without a model or features: %s", exc)
        svc.store.start_polling()
        try:
            with PROCESS_TUNING.serving():
                yield
        finally:
            svc.store.stop_polling()
            svc.forecast_log.close()  # drains the queue: a clean shutdown loses no forecast-log rows
            svc.engine.dispose()

    # /docs and /redoc from Swagger UI's and ReDoc's assets shipped in fastapi-offline, served by
    # this app under DOCS_ASSETS: they work without internet, and the CSP allows only 'self'.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="Fluxora forecast API",
        version="1.0.0",
        description="Electric load forecasts from the champion model in the MLflow registry. "
        "Every /v1 route needs `X-API-Key: <key>` or `Authorization: Bearer <JWT>`.",
        lifespan=lifespan,
    )
    app.state.services = svc
    for router in (health.router, auth.router, forecast.router, models.router, keys.router):
        app.include_router(router)

    app.add_exception_handler(RequestValidationError, validation_error)  # JSON-safe 422s (NaN in a body)

    @app.exception_handler(FluxoraError)
    async def fluxora_error(_: Request, exc: FluxoraError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(settings.retry_after_s)})

    # The service database down (refused, unreachable, pool exhausted): what needs it answers 503
    # with Retry-After, never a 500; forecasts for keys already verified keep being served.
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("service database unavailable on %s %s: %s", request.method, request.url.path, first_line(exc))
        return JSONResponse(
            {"detail": "service database unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": str(settings.retry_after_s)},
        )

    for kind in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(kind, database_down)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(ServiceMiddleware, metrics=svc.metrics, max_body_bytes=settings.max_body_bytes)  # outermost
    return app
