"""Which model is served, and which were served or refused before (the history in the service
database, shared by every worker and kept across restarts)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from fluxora.api.deps import Caller, Model, Svc, error_responses
from fluxora.api.model_store import HISTORY_LIMIT, event_dict
from fluxora.api.routes.forecast import _history_hours
from fluxora.api.schemas import ContractInfo, ModelEventOut, ModelHistory, ModelInfo

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("/current", response_model=ModelInfo, responses=error_responses(401, 403, 429, 503))
async def current(svc: Svc, who: Caller, model: Model) -> ModelInfo:
    """The version serving now, where it came from, and the input contract it needs."""
    c = model.forecaster.contract
    hours = {name: h for name in c.state_features if (h := _history_hours(model, name)) is not None}
    return ModelInfo(
        name=svc.settings.model_name,
        version=model.version,
        source=model.source,
        loaded_at=model.loaded_at,
        reason=model.reason,
        contract=ContractInfo(
            feature_service=c.feature_service,
            state_features=list(c.state_features),
            history_hours=hours,
            horizon=c.horizon,
            quantiles=list(c.quantiles),
            resolution=c.resolution,
            temperature=c.temperature,
            weather=c.weather,
        ),
    )


@router.get("/history", response_model=ModelHistory, responses=error_responses(401, 403, 429, 503))
async def history(svc: Svc, who: Caller) -> ModelHistory:
    """The latest versions served or refused, oldest first, with when, why and by which service
    process: every worker sharing the database and earlier runs of the service, not only this
    process. 503 when the database cannot be read."""
    events = await run_in_threadpool(svc.model_events.latest, HISTORY_LIMIT)
    return ModelHistory(events=[ModelEventOut.model_validate(event_dict(e)) for e in events])
