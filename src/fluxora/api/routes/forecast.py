"""GET /v1/forecast: latest online features -> champion model -> hourly points."""

from __future__ import annotations

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
    state = features.latest(series_id)  # FeatureStoreError -> 503 by the app's handler
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown series {series_id!r}")
    origin = np.array([np.datetime64(state.origin.replace(tzinfo=None), "ns")])
    times, values = model.forecaster.forecast(state.load_history[None, :], state.temp_history[None, :], origin, horizon)
    points = [
        ForecastPoint(timestamp=t.astype("datetime64[us]").item().replace(tzinfo=state.origin.tzinfo), value=float(v))
        for t, v in zip(times[0], values[0], strict=True)
    ]
    return ForecastResponse(
        series_id=series_id, model_version=model.version, origin=state.origin, horizon=horizon, points=points
    )
