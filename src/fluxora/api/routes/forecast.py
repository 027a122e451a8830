"""Forecasts: GET/POST /v1/forecast (latest online features) and POST /v1/predict (caller's features).

Hot path: numpy arrays from the online store straight into the native model; no DataFrame, no
MLflow pyfunc. The served-forecast log is queued, not written, on the request path.

The handlers are `async def` and do their work inline: an online read (~0.1 ms from SQLite,
a loopback round trip from Redis) plus a ~1 ms model call is cheaper than the thread-pool
hand-off FastAPI makes for a sync handler, and one process cannot run them in parallel anyway.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, status

from fluxora.api.deps import Caller, Model, Svc, check_series, error_responses
from fluxora.api.model_store import LoadedModel
from fluxora.api.schemas import (
    MAX_HORIZON,
    BatchForecastResponse,
    ForecastPoint,
    ForecastRequest,
    ForecastResponse,
    PredictRequest,
)
from fluxora.models.native import Forecast

router = APIRouter(prefix="/v1", tags=["forecast"])
ERRORS = error_responses(401, 403, 404, 413, 422, 429, 503)


@router.get("/forecast", response_model=ForecastResponse, responses=ERRORS, summary="Forecast one series")
async def forecast(
    request: Request,
    svc: Svc,
    who: Caller,
    model: Model,
    series_id: Annotated[str, Query(min_length=1, max_length=200, description="series to forecast")],
    horizon: Annotated[int, Query(ge=1, le=MAX_HORIZON, description="hours ahead")] = 24,
    quantiles: Annotated[list[float] | None, Query(max_length=20, description="quantile levels, e.g. 0.1")] = None,
) -> ForecastResponse:
    """Latest features of `series_id` from the online store → the champion → hourly points."""
    return _online(request, svc, who, model, [series_id], horizon, quantiles or [], "get_forecast")[0]


@router.post(
    "/forecast", response_model=BatchForecastResponse, responses=ERRORS, summary="Forecast many series at once"
)
async def forecast_many(
    request: Request, svc: Svc, who: Caller, model: Model, body: ForecastRequest
) -> BatchForecastResponse:
    """One online read and one model call for all requested series (in request order)."""
    if len(body.series_ids) > svc.settings.max_series_per_request:
        raise HTTPException(422, f"at most {svc.settings.max_series_per_request} series per request")
    series = list(dict.fromkeys(body.series_ids))
    out = _online(request, svc, who, model, series, body.horizon, body.quantiles, "post_forecast")
    return BatchForecastResponse(model_version=model.version, forecasts=out)


@router.post("/predict", response_model=BatchForecastResponse, responses=ERRORS, summary="Forecast from your features")
async def predict(request: Request, svc: Svc, who: Caller, model: Model, body: PredictRequest) -> BatchForecastResponse:
    """Forecast from origin states the caller supplies (e.g. with its own weather), not the online store."""
    started = time.perf_counter()
    check_series(who, [i.series_id for i in body.instances])
    c = model.forecaster.contract
    _check_request(model, body.horizon, body.quantiles)
    lengths = {name: _history_hours(model, name) for name in c.state_features}
    state: dict[str, np.ndarray] = {}
    for name, length in lengths.items():
        rows = []
        for k, inst in enumerate(body.instances):
            values = inst.features.get(name)
            if values is None:
                raise HTTPException(422, f"instances[{k}].features lacks {name!r} (needs {list(c.state_features)})")
            if length is not None and len(values) != length:
                raise HTTPException(422, f"instances[{k}].features.{name} needs {length} values, got {len(values)}")
            rows.append(values)
        if len({len(r) for r in rows}) != 1:
            raise HTTPException(422, f"every instance needs the same number of {name} values")
        state[name] = np.asarray(rows, dtype="float64")
    extra = sorted({n for inst in body.instances for n in inst.features} - set(c.state_features))
    if extra:
        raise HTTPException(422, f"unknown features {extra}; this model reads {list(c.state_features)}")
    origins = np.array([_to_datetime64(i.origin) for i in body.instances], dtype="datetime64[ns]")
    result = _run(model, state, origins, body.horizon, body.quantiles)
    series = [i.series_id for i in body.instances]
    out = _responses(model, series, origins, result, body.quantiles, with_age=False)
    _record(request, svc, who, model, out, result, body.quantiles, "predict", started)
    return BatchForecastResponse(model_version=model.version, forecasts=out)


def _online(
    request: Request,
    svc: Svc,
    who: Any,
    model: LoadedModel,
    series: list[str],
    horizon: int,
    quantiles: Sequence[float],
    endpoint: str,
) -> list[ForecastResponse]:
    started = time.perf_counter()
    check_series(who, series)  # before any read: a key never learns whether another scope's series exists
    _check_request(model, horizon, quantiles)
    c = model.forecaster.contract
    states = svc.online.states(series, c.feature_service, c.state_features)  # FeatureStoreError -> 503
    if states.missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown series {states.missing}")
    result = _run(model, states.features, states.origins, horizon, quantiles)
    out = _responses(model, states.series_ids, states.origins, result, quantiles, with_age=True)
    _record(request, svc, who, model, out, result, quantiles, endpoint, started)
    return out


def _check_request(model: LoadedModel, horizon: int, quantiles: Sequence[float]) -> None:
    c = model.forecaster.contract
    if horizon > c.horizon:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"horizon must be between 1 and {c.horizon} for model version {model.version}",
        )
    unknown = sorted(set(quantiles) - set(c.quantiles))
    if unknown:
        offered = list(c.quantiles) or "none (a point forecast model)"
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"quantiles {unknown} are not available from model version {model.version}; it provides {offered}",
        )


def _history_hours(model: LoadedModel, name: str) -> int | None:
    from fluxora.features.build import LOAD_HISTORY, TEMP_HISTORY

    c = model.forecaster.contract
    return {LOAD_HISTORY: c.load_history_hours, TEMP_HISTORY: c.temp_history_hours}.get(name)


def _run(
    model: LoadedModel, state: dict[str, np.ndarray], origins: np.ndarray, horizon: int, quantiles: Sequence[float]
) -> Forecast:
    try:
        with np.errstate(all="ignore"):
            result = model.forecaster.forecast(state, origins, horizon, tuple(quantiles))
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    if not np.isfinite(result.point).all() or not all(np.isfinite(q).all() for q in result.quantiles.values()):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="these features give a non-finite forecast")
    return result


def _responses(
    model: LoadedModel,
    series: list[str],
    origins: np.ndarray,
    result: Forecast,
    quantiles: Sequence[float],
    with_age: bool,
) -> list[ForecastResponse]:
    now = time.time()
    levels = [(str(q), result.quantiles[q]) for q in dict.fromkeys(quantiles)]
    out = []
    for i, sid in enumerate(series):
        times = _datetimes(result.times[i])
        points = [
            ForecastPoint(timestamp=t, value=float(v), quantiles={name: float(q[i, k]) for name, q in levels})
            for k, (t, v) in enumerate(zip(times, result.point[i].tolist(), strict=True))
        ]
        origin = _datetimes(origins[i : i + 1])[0]
        out.append(
            ForecastResponse(
                series_id=sid,
                model_version=model.version,
                origin=origin,
                feature_age_seconds=round(now - origin.timestamp(), 3) if with_age else None,
                horizon=result.point.shape[1],
                points=points,
            )
        )
    return out


def _record(
    request: Request,
    svc: Svc,
    who: Any,
    model: LoadedModel,
    out: list[ForecastResponse],
    result: Forecast,
    quantiles: Sequence[float],
    endpoint: str,
    started: float,
) -> None:
    served_at = datetime.now(UTC)
    latency = (time.perf_counter() - started) * 1000
    request_id = getattr(request.state, "request_id", None)
    rows = [
        {
            "served_at": served_at,
            "series_id": r.series_id,
            "origin": r.origin,
            "horizon": r.horizon,
            "values": result.point[i].tolist(),
            "quantiles": {str(q): result.quantiles[q][i].tolist() for q in quantiles} or None,
            "model_version": model.version,
            "consumer": who.subject,
            "endpoint": endpoint,
            "request_id": request_id,
            "latency_ms": latency,
        }
        for i, r in enumerate(out)
    ]
    svc.forecast_log.submit(rows)
    svc.metrics.predictions.labels(endpoint=endpoint, model_version=model.version).inc(len(out))


def _datetimes(values: np.ndarray) -> list[datetime]:
    micros = values.astype("datetime64[us]").astype("int64").tolist()
    return [datetime.fromtimestamp(m / 1e6, tz=UTC) for m in micros]


def _to_datetime64(value: datetime) -> np.datetime64:
    if value.tzinfo is None:
        raise HTTPException(422, "origin must be timezone-aware, e.g. 2024-06-01T12:00:00Z")
    return np.datetime64(value.astimezone(UTC).replace(tzinfo=None), "ns")
