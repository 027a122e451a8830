"""Request and response bodies: one model per role, documented in the OpenAPI spec."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# The limits of a forecast question, written once: the POST bodies below, the GET /v1/forecast
# query (`ForecastQuery`, validated by the route itself) and its OpenAPI text all use these.
MAX_HORIZON = 672  # steps: a week at 15 minutes (each model allows its own horizon, at most this)
DEFAULT_HORIZON = "24h"  # a horizon left out: a day ahead at the model's step, at most its own horizon
# Series per POST /v1/forecast: the body's hard limit; the service allows `serve.max_series_per_request`
# (1,000 by default, at most this), a clear 422 above it.
MAX_SERIES_PER_REQUEST = 10_000
MAX_INSTANCES = 100  # caller-supplied states per POST /v1/predict (each carries its histories)
MAX_QUANTILES = 20  # quantile levels per request

# The instants the service accepts (an origin, any timestamp in a body or query): far inside
# numpy datetime64[ns] (1677-09-21 .. 2262-04-11), which the models compute in, so an origin
# plus the longest horizon can never overflow into a wrong date. Outside it: 422.
MIN_TIMESTAMP = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)
TIMESTAMP_RANGE = f"{MIN_TIMESTAMP:%Y-%m-%dT%H:%M:%SZ} to {MAX_TIMESTAMP:%Y-%m-%dT%H:%M:%SZ}"


def _in_range(value: datetime) -> datetime:
    """A timestamp within [MIN_TIMESTAMP, MAX_TIMESTAMP] (a naive one read as UTC here; whether
    naive values are accepted is the caller's rule). Converting 9999-12-31T23:00-05:00 or
    0001-01-01T00:00+05:00 to UTC overflows Python's datetime: that is out of range too."""
    try:
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not MIN_TIMESTAMP <= utc <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp {value.isoformat()} is outside the supported range {TIMESTAMP_RANGE}")
    return value


# Every timestamp a request carries is this type (bodies and the GET query alike).
Timestamp = Annotated[datetime, AfterValidator(_in_range)]

# Request numbers are finite: NaN/Infinity JSON literals (which Python's json accepts) are a 422.
SeriesId = Annotated[str, Field(min_length=1, max_length=200, description="series identifier")]
Level = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False, description="quantile level, e.g. 0.1")]


DURATION_PATTERN = r"^\s*\d+\s*(min|minutes?|m|h|hours?|d|days?)\s*$"

# Steps (1..MAX_HORIZON; at an hourly model steps are hours) or a duration ("24h", "90min",
# "2d") that the model's resolution turns into steps (`fluxora.data.resolution`); None (left
# out): a day ahead, at most the model's own horizon (the route decides, `DEFAULT_HORIZON`).
Horizon = Annotated[
    Annotated[int, Field(ge=1, le=MAX_HORIZON)] | Annotated[str, Field(pattern=DURATION_PATTERN)] | None,
    Field(
        description="steps ahead at the model's resolution (hours for an hourly model, 48 = a day at 30 "
        "minutes) or a duration such as 24h or 90min; left out: a day ahead (24h), or the model's own "
        "horizon when that is shorter"
    ),
]
Levels = Annotated[list[Level], Field(max_length=MAX_QUANTILES)]


def _finite(values: list[float]) -> list[float]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError("values must be finite numbers")
    return values


FiniteList = Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], AfterValidator(_finite)]


class RequestBody(BaseModel):
    """The base of every request model: unknown fields and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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
    stale: bool = Field(
        default=False,
        description="true when feature_age_seconds is beyond the service's limit (serve.max_feature_age_s): "
        "no newer data has reached the online store; always false for /v1/predict",
    )
    horizon: int = Field(description="steps ahead at `resolution`")
    resolution: str = Field(default="h", description="the model's step: h, 30min or 15min; points are this far apart")
    weather_issued_at: datetime | None = Field(
        default=None,
        description="issue time (UTC) of the newest weather forecast used; null when the model reads none "
        "or none was fresh",
    )
    weather_fallback_steps: list[int] | None = Field(
        default=None,
        description="steps at the model's resolution (1 = the first point) without a forecast temperature, "
        "which used persistence (the same time of day on the latest observed day); null for a model that "
        "reads no weather forecast",
    )
    points: list[ForecastPoint]


class ForecastRequest(RequestBody):
    series_ids: list[SeriesId] = Field(
        min_length=1,
        max_length=MAX_SERIES_PER_REQUEST,
        description="series to forecast (at most serve.max_series_per_request)",
    )
    horizon: Horizon = None
    quantiles: Levels = Field(default_factory=list)


class ForecastQuery(RequestBody):
    """The query of GET /v1/forecast (one series). The route validates it itself, without
    FastAPI's parameter solving, and documents its parameters from this model's JSON schema."""

    series_id: SeriesId = Field(description="series to forecast")
    horizon: Horizon = None
    quantiles: Levels | None = Field(default=None, description="quantile levels, e.g. 0.1")


class BatchForecastResponse(BaseModel):
    model_version: str
    forecasts: list[ForecastResponse]


class PredictInstance(RequestBody):
    """One origin state supplied by the caller, e.g. with its own weather forecast folded in."""

    series_id: SeriesId
    origin: Timestamp = Field(description=f"forecast origin, timezone-aware (converted to UTC), from {TIMESTAMP_RANGE}")
    features: dict[str, FiniteList] = Field(
        description="state features named by the model contract (GET /v1/models/current), "
        "each the hourly history ending at the origin, oldest first"
    )


class PredictRequest(RequestBody):
    instances: list[PredictInstance] = Field(min_length=1, max_length=MAX_INSTANCES)
    horizon: Horizon = None
    quantiles: Levels = Field(default_factory=list)


class ContractInfo(BaseModel):
    feature_service: str
    state_features: list[str]
    history_hours: dict[str, int]
    horizon: int
    quantiles: list[float]
    resolution: str = Field(default="h", description="the model's step (h, 30min, 15min): horizon is in these steps")
    temperature: str = Field(
        description="required: every series needs temperature history; optional: series without it are "
        "forecast from load alone; none: a load-only model (no temperature is read)"
    )
    weather: str = Field(
        default="persistence",
        description="temperature at the target hours: issued (the issued weather forecast in the online "
        "store, persistence where it has none), persistence (the same hour on the latest observed day), "
        "target (`target_temperature` supplied with each request)",
    )


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


class KeyCreate(RequestBody):
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
