"""Forecasts: GET/POST /v1/forecast (latest online features) and POST /v1/predict (caller's features).

Hot path: numpy arrays from the online store straight into the native model; no DataFrame, no
MLflow pyfunc. A series whose state, model and question are unchanged since the last request
is answered from the forecast cache (the current state is still looked up every time, see
`forecast_cache` and `online`). Responses are JSON text built directly (`rendering`), not pydantic
objects. The served-forecast log is queued, not written, on the request path.

The handlers are `async def` and do their work inline: an online read (~0.1 ms from SQLite,
microseconds for a kept state, a loopback round trip from Redis) plus a ~1 ms model call is
cheaper than the thread-pool hand-off FastAPI makes for a sync handler, and one process
cannot run them in parallel anyway.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from fluxora.api import weather
from fluxora.api.deps import SERVING_SECURITY, Call, Serving, check_series, error_responses, serving_from_request
from fluxora.api.forecast_cache import Computed, state_key
from fluxora.api.model_store import LoadedModel
from fluxora.api.picture import Picture, forecast_page
from fluxora.api.rendering import JSONText, batch_json, computed_rows, forecast_json, iso_utc, utc_datetime
from fluxora.api.schemas import (
    DEFAULT_HORIZON,
    BatchForecastResponse,
    ForecastQuery,
    ForecastRequest,
    ForecastResponse,
    Horizon,
    PredictRequest,
    SeriesId,
)
from fluxora.features.names import LOAD_HISTORY, TEMP_HISTORY
from fluxora.models.native import Forecast, without_temperature

router = APIRouter(prefix="/v1", tags=["forecast"])
ERRORS = error_responses(401, 403, 404, 413, 422, 429, 503)


# GET /v1/forecast is the hot path, and FastAPI's per-request dependency and parameter solving
# (the `Security` schemes, `serving_call`, three query fields) cost about as much as the rest of
# a cache hit. The route therefore takes only the `Request`: it authenticates with the same
# objects (`serving_from_request`) and validates its query with `ForecastQuery` (the limits
# the POST bodies use), reported as FastAPI reports them (422, `loc` ["query", name]). Its
# parameters, from the same model's JSON schema, and its security are declared for the OpenAPI
# document below as FastAPI would derive them from a signature.
def _field_adapter(field: FieldInfo) -> TypeAdapter[Any]:
    """A validator of one model field on its own: its type with its constraints and description."""
    annotated: Any = Annotated[field.annotation, field]
    return TypeAdapter(annotated)


_QUERY = [  # per `ForecastQuery` field, in order: (name, repeated in the query, validator, default; ... = required)
    (name, name == "quantiles", _field_adapter(f), ... if f.is_required() else f.default)
    for name, f in ForecastQuery.model_fields.items()
]


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI `parameters` of a query model: one per field, in order."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if not (k == "default" and v is None)}  # FastAPI omits it too
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    return parameters


FORECAST_GET_DOCS: dict[str, Any] = {"parameters": query_parameters(ForecastQuery), "security": SERVING_SECURITY}


def _forecast_query(request: Request) -> tuple[str, int | str | None, list[float]]:
    """`series_id`, `horizon` and `quantiles` of a GET /v1/forecast, validated as FastAPI would
    validate the declared query parameters (last value of a repeated scalar, all of a list)."""
    query = request.query_params
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, is_list, adapter, default in _QUERY:
        raw: Any = query.getlist(name) if is_list else query.get(name)
        if raw is None or raw == []:
            if default is ...:
                errors.append({"type": "missing", "loc": ("query", name), "msg": "Field required", "input": None})
                continue
            values[name] = default
            continue
        try:
            values[name] = adapter.validate_python(raw)
        except ValidationError as exc:
            found = exc.errors(include_url=False)
            if is_list:  # a list's errors name the item
                errors.extend({**e, "loc": ("query", name, *e["loc"])} for e in found)
                continue
            # the horizon is steps or a duration: one error, the branch the text was meant for
            meant = found[0] if len(found) == 1 or str(raw).strip().lstrip("-").isdigit() else found[-1]
            errors.append({**meant, "loc": ("query", name)})
    if errors:
        raise RequestValidationError(errors)
    return values["series_id"], values["horizon"], values["quantiles"] or []


@router.get(
    "/forecast",
    response_model=ForecastResponse,
    responses=ERRORS,
    summary="Forecast one series",
    openapi_extra=FORECAST_GET_DOCS,
)
async def forecast(request: Request) -> Response:
    """Latest features of `series_id` from the online store → the champion → hourly points."""
    call = await serving_from_request(request)  # 401/429/503 before the query is looked at, as before
    series_id, horizon, quantiles = _forecast_query(request)
    return JSONText(_online(call, [series_id], horizon, quantiles, "get_forecast")[0])


PLOT_LEVELS = (0.1, 0.9)  # the 80 % interval drawn around the point forecast
# Its errors are JSON like every route's: declared with their content type, since FastAPI would
# document a `model` under the route's own (text/html).
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
PLOT_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": desc, "content": _JSON_ERROR}
    for code, desc in {
        401: "no or bad credentials",
        403: "the key may not read this series",
        404: "unknown series",
        422: "bad parameters",
        429: "rate limited",
        503: "no model, or the online store unavailable",
    }.items()
}


@router.get(
    "/forecast/plot",
    response_class=HTMLResponse,
    responses=PLOT_ERRORS,
    summary="A picture of one series' forecast",
)
async def forecast_plot(
    call: Serving,
    series_id: Annotated[SeriesId, Query()],
    horizon: Annotated[Horizon, Query()] = None,
) -> Response:
    """A self-contained HTML page (inline SVG): the series' recent actuals (the online state's
    load history), the champion's forecast from that state, as GET /v1/forecast serves it, and
    its 80 % interval when the model has quantiles 0.1 and 0.9. Not logged as a served forecast."""
    model = call.model
    check_series(call.who, [series_id])
    horizon = _check_request(model, horizon, ())
    c = model.forecaster.contract
    states = call.svc.online.states([series_id], c.feature_service, weather.online_features(c))
    if states.missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown series {states.missing}")
    if without_temperature(states.features, c).size:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"series {series_id!r} has no temperature; model version {model.version} cannot forecast it",
        )
    history = np.asarray(states.features[LOAD_HISTORY][0], dtype="float64")
    weather.apply(states.features, states.origins, c, horizon)
    _refuse_too_old(call, states.series_ids, states.origins.astype("int64").tolist())
    levels = PLOT_LEVELS if set(PLOT_LEVELS) <= set(c.quantiles) else ()
    result = _run(model, states.features, states.origins, horizon, levels)
    return HTMLResponse(forecast_page(picture(series_id, model.version, states.origins[0], history, result)))


def picture(series_id: str, version: str, origin: np.datetime64, history: np.ndarray, result: Forecast) -> Picture:
    """The `Picture` of one series' forecast (row 0 of `result`) after `history`, which ends at `origin`."""
    step = result.times[0, 0] - origin if result.times.shape[1] else np.timedelta64(1, "h")  # the model's step
    actual_times = origin - step * np.arange(len(history) - 1, -1, -1)
    keep = np.isfinite(history)
    lower, upper = (result.quantiles[q][0].tolist() if q in result.quantiles else [] for q in PLOT_LEVELS)
    return Picture(
        series_id=series_id,
        model_version=version,
        origin=_utc(origin),
        actual_times=[_utc(t) for t in actual_times[keep]],
        actual=history[keep].tolist(),
        times=[_utc(t) for t in result.times[0]],
        point=result.point[0].tolist(),
        lower=lower,
        upper=upper,
    )


def _utc(t: np.datetime64) -> datetime:
    return datetime.fromtimestamp(int(t.astype("datetime64[ns]").astype("int64")) / 1e9, tz=UTC)


@router.post(
    "/forecast", response_model=BatchForecastResponse, responses=ERRORS, summary="Forecast many series at once"
)
async def forecast_many(call: Serving, body: ForecastRequest) -> Response:
    """One online read and one model call for all requested series (in request order)."""
    limit = call.svc.settings.max_series_per_request
    if len(body.series_ids) > limit:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"at most {limit} series per request (serve.max_series_per_request), got {len(body.series_ids)}; "
            "split the request",
        )
    series = list(dict.fromkeys(body.series_ids))
    out = _online(call, series, body.horizon, body.quantiles, "post_forecast")
    return JSONText(batch_json(call.model.version, out))


@router.post("/predict", response_model=BatchForecastResponse, responses=ERRORS, summary="Forecast from your features")
async def predict(call: Serving, body: PredictRequest) -> Response:
    """Forecast from origin states the caller supplies (e.g. with its own weather), not the online store."""
    started = time.perf_counter()
    model = call.model
    check_series(call.who, [i.series_id for i in body.instances])
    c = model.forecaster.contract
    horizon = _check_request(model, body.horizon, body.quantiles)
    lengths = {name: _history_steps(model, name) for name in c.state_features}
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
    levels = tuple(dict.fromkeys(body.quantiles))
    used = weather.apply(state, origins, c, horizon)
    result = _run(model, state, origins, horizon, levels)
    series = [i.series_id for i in body.instances]
    # Caller-supplied states rarely repeat: computed per request, not cached.
    entries = computed_rows(result, range(len(series)), levels)
    out = _serve(call, series, origins, entries, horizon, "predict", started, used, with_age=False)
    return JSONText(batch_json(model.version, out))


def _online(
    call: Call,
    series: list[str],
    horizon_asked: int | str | None,
    quantiles: Sequence[float],
    endpoint: str,
) -> list[str]:
    """The rendered forecasts of `series` from their latest online states (cached per state)."""
    started = time.perf_counter()
    svc, model = call.svc, call.model
    check_series(call.who, series)  # before any read: a key never learns whether another scope's series exists
    horizon = _check_request(model, horizon_asked, quantiles)
    c = model.forecaster.contract
    states = svc.online.states(series, c.feature_service, weather.online_features(c))  # FeatureStoreError -> 503
    if states.missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown series {states.missing}")
    if (lacking := without_temperature(states.features, c)).size:
        names = [states.series_ids[i] for i in lacking[:10]]
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"series {names} have no temperature; model version {model.version} was trained with "
            "temperature for every series and cannot forecast them",
        )
    levels = tuple(dict.fromkeys(quantiles))
    used = weather.apply(states.features, states.origins, c, horizon)
    origin_ns = states.origins.astype("int64").tolist()
    _refuse_too_old(call, states.series_ids, origin_ns)
    keys = [
        state_key(model.version, sid, origin_ns[i], (v[i] for v in states.features.values()), horizon, levels)
        for i, sid in enumerate(states.series_ids)
    ]
    entries = [svc.forecasts.get(k) for k in keys]
    todo = [i for i, e in enumerate(entries) if e is None]
    if todo:
        rows = todo if len(todo) < len(entries) else slice(None)
        result = _run(model, {n: v[rows] for n, v in states.features.items()}, states.origins[rows], horizon, levels)
        for i, fresh in zip(todo, computed_rows(result, range(len(todo)), levels), strict=True):
            entries[i] = fresh
            svc.forecasts.put(keys[i], fresh)
    done = [e for e in entries if e is not None]
    return _serve(call, states.series_ids, states.origins, done, horizon, endpoint, started, used)


def _refuse_too_old(call: Call, series: list[str], origin_ns: list[int]) -> None:
    """503 when a series' features are older than `serve.max_feature_age_hard_s` (when set)."""
    freshness = call.svc.freshness
    if not freshness.hard_limit_s:
        return
    now = time.time()
    ages = [(sid, now - o / 1e9) for sid, o in zip(series, origin_ns, strict=True)]
    old = [(sid, age) for sid, age in ages if freshness.is_refused(age)]
    if old:
        freshness.seen(series, origin_ns)
        call.svc.metrics.stale_refused.inc()
        sid, age = max(old, key=lambda x: x[1])
        more = f" and {len(old) - 1} more" if len(old) > 1 else ""
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"features of series {sid!r}{more} are {age / 86_400:.1f} days old, beyond "
            f"serve.max_feature_age_hard_s ({freshness.hard_limit_s:.0f} s): no forecast is served from them "
            "until new data is ingested and materialized",
            headers={"Retry-After": str(call.svc.settings.retry_after_s)},
        )


def _check_request(model: LoadedModel, horizon: int | str | None, quantiles: Sequence[float]) -> int:
    """The request's horizon in the model's steps (a duration such as "24h" converted; none asked:
    a day ahead, at most the model's horizon); 422 for a horizon or quantiles the model cannot give."""
    c = model.forecaster.contract
    if horizon is None:
        horizon = min(c.step.horizon(DEFAULT_HORIZON), c.horizon)
    try:
        steps = c.step.horizon(horizon)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    if not 1 <= steps <= c.horizon:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"horizon must be between 1 and {c.horizon} steps of {c.resolution} for model version "
            f"{model.version} (asked {horizon!r})",
        )
    unknown = sorted(set(quantiles) - set(c.quantiles))
    if unknown:
        offered = list(c.quantiles) or "none (a point forecast model)"
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"quantiles {unknown} are not available from model version {model.version}; it provides {offered}",
        )
    return steps


def _history_hours(model: LoadedModel, name: str) -> int | None:
    c = model.forecaster.contract
    return {LOAD_HISTORY: c.load_history_hours, TEMP_HISTORY: c.temp_history_hours}.get(name)


def _history_steps(model: LoadedModel, name: str) -> int | None:
    """Values a state array holds: its hours in steps of the model (672 for a 15-minute week)."""
    c = model.forecaster.contract
    return {LOAD_HISTORY: c.load_history_steps, TEMP_HISTORY: c.temp_history_steps}.get(name)


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


def _serve(
    call: Call,
    series: list[str],
    origins: np.ndarray,
    entries: list[Computed],
    horizon: int,
    endpoint: str,
    started: float,
    used: weather.Used,
    with_age: bool = True,
) -> list[str]:
    """Render each series' `ForecastResponse` and queue its forecast-log row."""
    model = call.model
    now = time.time()
    served_at = datetime.now(UTC)
    origin_ns = origins.astype("int64").tolist()
    origin_text = _origin_text(origins, origin_ns)
    freshness = call.svc.freshness
    ages = [round(now - o / 1e9, 3) for o in origin_ns] if with_age else [None] * len(series)
    stale = [age is not None and freshness.is_stale(age) for age in ages]
    out = [
        forecast_json(
            sid,
            model.version,
            origin_text[i],
            ages[i],
            stale[i],
            horizon,
            entries[i].points_json,
            used.members[i],
            model.forecaster.contract.resolution,
        )
        for i, sid in enumerate(series)
    ]
    latency = (time.perf_counter() - started) * 1000
    request_id = getattr(call.request.state, "request_id", None)
    call.svc.forecast_log.submit(
        [
            {
                "served_at": served_at,
                "series_id": sid,
                "origin": utc_datetime(origin_ns[i]),
                "horizon": horizon,
                "values": entries[i].values,
                "quantiles": entries[i].quantiles,
                "model_version": model.version,
                "consumer": call.who.subject,
                "endpoint": endpoint,
                "request_id": request_id,
                "latency_ms": latency,
                "weather_issued_at": used.issued[i],
                "weather_fallback_steps": used.fallbacks[i],
            }
            for i, sid in enumerate(series)
        ]
    )
    call.svc.metrics.predicted(endpoint, model.version, len(out))
    call.svc.metrics.weather_fallback(endpoint, used.fallback_steps, used.without_forecast)
    if with_age:
        freshness.seen(series, origin_ns)
        if n_stale := sum(stale):
            call.svc.metrics.served_stale(endpoint, n_stale)
    return out


_ORIGIN_TEXT: dict[tuple[int, ...], list[str]] = {}  # the origins of a request -> their ISO text
_MAX_ORIGIN_TEXT = 10_000


def _origin_text(origins: np.ndarray, origin_ns: list[int]) -> list[str]:
    """`iso_utc(origins)`, remembered: a series' origin only moves once an hour."""
    key = tuple(origin_ns)
    text = _ORIGIN_TEXT.get(key)
    if text is None:
        if len(_ORIGIN_TEXT) >= _MAX_ORIGIN_TEXT:
            _ORIGIN_TEXT.clear()
        text = _ORIGIN_TEXT[key] = iso_utc(origins)
    return text


def _to_datetime64(value: datetime) -> np.datetime64:
    if value.tzinfo is None:
        raise HTTPException(422, "origin must be timezone-aware, e.g. 2024-06-01T12:00:00Z")
    return np.datetime64(value.astimezone(UTC).replace(tzinfo=None), "ns")
