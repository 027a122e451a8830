"""Request and response bodies: one model per role, documented in the OpenAPI spec."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# The limits of a forecast question, written once: the POST bodies below, the GET /v1/forecast
# query (`ForecastQuery`, validated by the route itself) and its OpenAPI text all use these.
MAX_HORIZON = 168
DEFAULT_HORIZON = 24
MAX_SERIES = 100  # series (or instances) per POST request; the service may allow fewer
MAX_QUANTILES = 20  # quantile levels per request

SeriesId = Annotated[str, Field(min_length=1, max_length=200, description="series identifier")]
Level = Annotated[float, Field(gt=0, lt=1, description="quantile level, e.g. 0.1")]
Horizon = Annotated[int, Field(ge=1, le=MAX_HORIZON, description="hours ahead")]
Levels = Annotated[list[Level], Field(max_length=MAX_QUANTILES)]


def _finite(values: list[float]) -> list[float]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError("values must be finite numbers")
    return values


FiniteList = Annotated[list[float], AfterValidator(_finite)]


class ForecastPoint(BaseModel):
    timestamp: datetime = Field(description="target time (UTC), the end of the forecast hour")
    value: float = Field(description="point forecast of load, in the series' unit")
    quantiles: dict[str, float] = Field(
        default_factory=dict, description="requested quantile level (as text, e.g. '0.9') -> value"
    )


class ForecastResponse(BaseModel):
    series_id: str
    model_version: str = Field(description="registry version of the model that made the forecast")
    origin: datetime = Field(description="time (UTC) of the latest features used: the forecast origin")
    feature_age_seconds: float | None = Field(
        default=None, description="how old the features were when served (now - origin); null for /v1/predict"
    )
    horizon: int
    points: list[ForecastPoint]


class ForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    series_ids: list[SeriesId] = Field(min_length=1, max_length=MAX_SERIES, description="series to forecast")
    horizon: Horizon = DEFAULT_HORIZON
    quantiles: Levels = Field(default_factory=list)


class ForecastQuery(BaseModel):
    """The query of GET /v1/forecast (one series). The route validates it itself, without
    FastAPI's parameter solving, and documents its parameters from this model's JSON schema."""

    series_id: SeriesId = Field(description="series to forecast")
    horizon: Horizon = DEFAULT_HORIZON
    quantiles: Levels | None = Field(default=None, description="quantile levels, e.g. 0.1")


class BatchForecastResponse(BaseModel):
    model_version: str
    forecasts: list[ForecastResponse]


class PredictInstance(BaseModel):
    """One origin state supplied by the caller, e.g. with its own weather forecast folded in."""

    model_config = ConfigDict(extra="forbid")

    series_id: SeriesId
    origin: datetime = Field(description="forecast origin, timezone-aware (converted to UTC)")
    features: dict[str, FiniteList] = Field(
        description="state features named by the model contract (GET /v1/models/current), "
        "each the hourly history ending at the origin, oldest first"
    )


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[PredictInstance] = Field(min_length=1, max_length=MAX_SERIES)
    horizon: Horizon = DEFAULT_HORIZON
    quantiles: Levels = Field(default_factory=list)


class ContractInfo(BaseModel):
    feature_service: str
    state_features: list[str]
    history_hours: dict[str, int]
    horizon: int
    quantiles: list[float]


class ModelInfo(BaseModel):
    name: str
    version: str
    source: str = Field(description="registry, or last-known-good when the registry was unreachable")
    loaded_at: datetime | None
    reason: str = Field(description="why this version is champion (the registry's promotion note)")
    contract: ContractInfo


class ModelEventOut(BaseModel):
    at: datetime
    version: str
    event: Literal["served", "refused"]
    source: str
    reason: str
    instance: str = Field(description='the service process that recorded the event, "host:pid"')


class ModelHistory(BaseModel):
    events: list[ModelEventOut]


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["reader", "admin"] = "reader"
    series: list[SeriesId] | None = Field(
        default=None, min_length=1, max_length=10_000, description="series this key may read; null: all"
    )


class KeyInfo(BaseModel):
    id: int
    prefix: str
    name: str
    role: str
    series: list[str] | None
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyInfo):
    key: str = Field(description="the API key; shown only in this response, send it as X-API-Key")


class KeyList(BaseModel):
    keys: list[KeyInfo]


class Liveness(BaseModel):
    status: str = "alive"


class Readiness(BaseModel):
    status: str
    model_version: str | None = None
    detail: str | None = None


class ErrorResponse(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="what went wrong; request validation errors (422) list each problem with its location"
    )
