"""Liveness, readiness and Prometheus metrics (no authentication: for orchestrators and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST

from fluxora.api.deps import Svc
from fluxora.api.schemas import Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=Liveness)
async def live() -> Liveness:
    return Liveness()


@router.get("/health/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(svc: Svc, response: Response) -> Readiness:
    """200 `ready`; 200 `degraded` (with the reasons) while a loaded model serves but the registry
    cannot be read, or while some series' features are older than `serve.max_feature_age_s`
    (a load balancer keeps the instance: it still answers); 503 `not ready` with no model."""
    model = svc.store.current
    if model is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        response.headers["Retry-After"] = str(svc.store.retry_after_s)
        return Readiness(status="not ready", detail=svc.store.last_error or "no model loaded")
    reasons = []
    registry = svc.store.registry
    if registry.up is False:  # an outage: still serving what was loaded, but promotions cannot arrive
        reasons.append(f"{registry.reason}; serving {model.source} version {model.version}")
    svc.refresh_freshness()
    if (fresh := svc.freshness.now()).stale:
        reasons.append(fresh.detail())
    if reasons:
        return Readiness(status="degraded", model_version=model.version, detail="; ".join(reasons))
    return Readiness(status="ready", model_version=model.version)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
)
async def metrics(svc: Svc) -> Response:
    """Request counts and latency by route and status, model version, predictions, load failures,
    feature staleness."""
    svc.refresh_freshness()
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)
