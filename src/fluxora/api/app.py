"""`create_app(settings)`: the FastAPI service. The lifespan loads the champion model."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fluxora.api.model_store import ModelStore
from fluxora.api.online import OnlineFeatures
from fluxora.api.routes import forecast, health
from fluxora.api.settings import ServiceSettings
from fluxora.errors import FluxoraError
from fluxora.paths import Home

log = logging.getLogger("fluxora.api")


def create_app(settings: ServiceSettings) -> FastAPI:
    """Build the service. A missing champion leaves it running but not ready (503), never crashed."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            app.state.model_store.load_champion()
        except FluxoraError as exc:
            log.warning("starting without a model: %s", exc)
        yield

    app = FastAPI(
        title="Fluxora forecast API",
        version="0.1.0",
        description="Electric load forecasts from the champion model in the MLflow registry.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.model_store = ModelStore(settings)
    app.state.online = OnlineFeatures(Home(settings.home))
    app.include_router(health.router)
    app.include_router(forecast.router)

    @app.exception_handler(FluxoraError)
    async def fluxora_error(_: Request, exc: FluxoraError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(settings.retry_after_s)})

    return app
