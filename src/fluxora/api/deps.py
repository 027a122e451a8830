"""Dependencies shared by routes: the model snapshot and the online feature reader."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from fluxora.api.model_store import LoadedModel, ModelStore
from fluxora.api.online import OnlineFeatures


def _model_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.model_store
    return store


def current_model(store: Annotated[ModelStore, Depends(_model_store)]) -> LoadedModel:
    """One snapshot of the served model for the whole request; 503 when there is none."""
    model = store.current
    if model is None:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="no model is loaded yet; train one with `fluxora run`",
            headers={"Retry-After": str(store.retry_after_s)},
        )
    return model


def online_features(request: Request) -> OnlineFeatures:
    reader: OnlineFeatures = request.app.state.online
    return reader


Model = Annotated[LoadedModel, Depends(current_model)]
Features = Annotated[OnlineFeatures, Depends(online_features)]
Store = Annotated[ModelStore, Depends(_model_store)]
