"""GET /v1/forecast: latest online features -> champion model -> hourly points."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Query, status

from fluxora.api.deps import Features, Model
from fluxora.api.schemas import ErrorResponse, ForecastPoint, ForecastResponse

router = APIRouter(prefix="/v1", tags=["forecast"])


@router.get(
    "/forecast",
    response_model=ForecastResponse,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    summary="Forecast one series from its latest features",
)
def forecast(
    model: Model,
    features: Features,
    series_id: Annotated[str, Query(min_length=1, max_length=200, description="series to forecast")],
    horizon: Annotated[int, Query(ge=1, le=168, description="hours ahead")] = 24,
) -> ForecastResponse:
    max_h = model.forecaster.contract.horizon
    if horizon > max_h:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"horizon must be between 1 and {max_h} for model version {model.version}",
        )
    contract = model.forecaster.contract
    # FeatureStoreError -> 503 by the app's handler
    states = features.states([series_id], contract.feature_service, contract.state_features)
    if states.missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown series {series_id!r}")
    result = model.forecaster.forecast(states.features, states.origins, horizon)
    origin = _utc(states.origins[0])
    points = [
        ForecastPoint(timestamp=_utc(t), value=float(v)) for t, v in zip(result.times[0], result.point[0], strict=True)
    ]
    return ForecastResponse(
        series_id=series_id, model_version=model.version, origin=origin, horizon=horizon, points=points
    )


def _utc(value: np.datetime64) -> datetime:
    return datetime.fromtimestamp(value.astype("datetime64[us]").astype("int64") / 1e6, tz=UTC)
