"""Liveness and readiness for orchestrators and load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from fluxora.api.deps import Store
from fluxora.api.schemas import Liveness, Readiness

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Liveness)
def live() -> Liveness:
    return Liveness()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(store: Store, response: Response) -> Readiness:
    model = store.current
    if model is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        response.headers["Retry-After"] = str(store.retry_after_s)
        return Readiness(status="not ready", detail=store.last_error or "no model loaded")
    return Readiness(status="ready", model_version=model.version)
