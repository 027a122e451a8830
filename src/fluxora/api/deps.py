"""Dependencies shared by routes: the services, the caller (authenticated and rate-limited),
the model snapshot and the online feature reader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from fluxora.api.auth import AuthError, ForbiddenError, KeyVerifier, Principal, verify_token
from fluxora.api.forecast_cache import ForecastCache
from fluxora.api.forecast_log import ForecastLogWriter
from fluxora.api.freshness import Freshness
from fluxora.api.metrics import Metrics
from fluxora.api.model_store import LoadedModel, ModelStore
from fluxora.api.online import OnlineFeatures
from fluxora.api.ratelimit import LoginThrottle, RateLimiter
from fluxora.api.settings import ServiceSettings
from fluxora.paths import Home
from fluxora.servicedb.history import ModelEventLog


@dataclass
class Services:
    """Everything the routes use, built once per app by `create_app`."""

    settings: ServiceSettings
    store: ModelStore
    online: OnlineFeatures
    engine: Engine
    sessions: sessionmaker[Session]
    keys: KeyVerifier
    secret: str
    limiter: RateLimiter
    login_throttle: LoginThrottle
    metrics: Metrics
    forecast_log: ForecastLogWriter
    forecasts: ForecastCache
    model_events: ModelEventLog
    freshness: Freshness

    def refresh_freshness(self, force: bool = False) -> None:
        """Re-read every series of the offline store from the online store (at most once per
        `freshness.REFRESH_S` unless `force`), with the served model's feature service."""
        from fluxora.api.freshness import offline_series
        from fluxora.features.store import offline_path

        model = self.store.current
        if model is None or not (force or self.freshness.due()):
            return
        c = model.forecaster.contract

        def read(series: list[str]) -> tuple[list[str], list[int]]:
            states = self.online.states(series, c.feature_service, c.state_features)
            return states.series_ids, states.origins.astype("int64").tolist()

        self.freshness.refresh(offline_series(offline_path(Home(self.settings.home))), read)


api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key from `fluxora keys create`")
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False, description="a JWT")

UNAUTHORIZED = {"WWW-Authenticate": 'Bearer, ApiKey header="X-API-Key"'}


# Dependencies are `async def` where they do not block: FastAPI runs every sync dependency in
# the thread pool, and those hand-offs cost more than the work here (see benchmarks/serving.py).
# FastAPI also spends tens of microseconds solving each dependency of each request, so the
# ones below read the services from the app state themselves instead of depending on `Svc`.


def _services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def services(request: Request) -> Services:
    return _services(request)


Svc = Annotated[Services, Depends(services)]


async def rate_limit(svc: Services, consumer: str) -> None:
    limiter = svc.limiter
    decision = await run_in_threadpool(limiter.hit, consumer) if limiter.blocking else limiter.hit(consumer)
    if not decision.allowed:
        svc.metrics.rate_limited.inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="rate limit exceeded",
            headers={"Retry-After": str(decision.retry_after_s)},
        )


async def _authenticate(request: Request, svc: Services, key: str | None, token: str | None) -> Principal:
    """The caller: an API key (`X-API-Key`) or a JWT (`Authorization: Bearer`); 401 otherwise;
    429 when the caller is over its rate limit."""
    try:
        if key:
            # A key verified moments ago is answered from memory; otherwise a database read, off the loop.
            cached = svc.keys.cached(key)
            who = cached if cached is not None else await run_in_threadpool(svc.keys.verify, key)
        elif token:
            who = verify_token(token, svc.secret, svc.settings.jwt_audience)
        else:
            raise AuthError("not authenticated: send X-API-Key or Authorization: Bearer <token>")
    except AuthError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(exc), headers=UNAUTHORIZED) from None
    request.state.consumer = who.subject
    await rate_limit(svc, who.subject)
    return who


def _snapshot(svc: Services) -> LoadedModel:
    """One snapshot of the served model for the whole request; 503 when there is none."""
    model = svc.store.current
    if model is None:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="no model is loaded yet; train one with `fluxora run`",
            headers={"Retry-After": str(svc.store.retry_after_s)},
        )
    return model


KeyHeader = Annotated[str | None, Security(api_key_scheme)]
BearerToken = Annotated[str | None, Security(bearer_scheme)]


async def principal(request: Request, key: KeyHeader, token: BearerToken) -> Principal:
    return await _authenticate(request, _services(request), key, token)


Caller = Annotated[Principal, Depends(principal)]


async def admin(who: Caller) -> Principal:
    try:
        who.require("admin")
    except ForbiddenError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from None
    return who


Admin = Annotated[Principal, Depends(admin)]


async def current_model(request: Request) -> LoadedModel:
    return _snapshot(_services(request))


Model = Annotated[LoadedModel, Depends(current_model)]


@dataclass(frozen=True)
class Call:
    """A model-serving request's context: the services, the authenticated and rate-limited
    caller, and the one model snapshot the request uses from start to end."""

    request: Request
    svc: Services
    who: Principal
    model: LoadedModel


async def serving_call(request: Request, key: KeyHeader, token: BearerToken) -> Call:
    """`principal` and `current_model` as one dependency (the forecast routes' hot path)."""
    svc = _services(request)
    who = await _authenticate(request, svc, key, token)
    return Call(request, svc, who, _snapshot(svc))


Serving = Annotated[Call, Depends(serving_call)]

# The OpenAPI `security` of a route that reads its credentials itself (`serving_from_request`)
# instead of declaring the `Security` dependencies: the same schemes `Serving` documents.
SERVING_SECURITY: list[dict[str, list[str]]] = [
    {api_key_scheme.scheme_name: []},
    {bearer_scheme.scheme_name: []},
]


async def serving_from_request(request: Request) -> Call:
    """`serving_call` for a route that skips FastAPI's dependency solving (the GET forecast
    hot path): the same header schemes, read by the same objects, then the same checks."""
    return await serving_call(request, await api_key_scheme(request), await bearer_scheme(request))


# Series scope, as HTTP: every route reads series and grants key scopes through these
# (the rules themselves are `Principal`'s: `check_series`, `covers`, `grant`).


def check_series(who: Principal, series_ids: list[str]) -> None:
    """403 unless the caller may read every one of `series_ids`."""
    try:
        who.check_series(series_ids)
    except ForbiddenError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from None


def granted_scope(who: Principal, requested: list[str] | None) -> list[str] | None:
    """The series scope of a key `who` creates (never wider than its own); 403 when it asks for more."""
    try:
        return who.grant(requested)
    except ForbiddenError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    from fluxora.api.schemas import ErrorResponse

    return {code: {"model": ErrorResponse} for code in codes}
