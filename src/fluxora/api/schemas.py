"""Response bodies: one model per role, documented in the OpenAPI spec."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ForecastPoint(BaseModel):
    timestamp: datetime = Field(description="target time (UTC), the end of the forecast hour")
    value: float = Field(description="point forecast of load, in the series' unit")


class ForecastResponse(BaseModel):
    series_id: str
    model_version: str = Field(description="registry version of the model that made the forecast")
    origin: datetime = Field(description="time (UTC) of the latest features used: the forecast origin")
    horizon: int
    points: list[ForecastPoint]


class Liveness(BaseModel):
    status: str = "alive"


class Readiness(BaseModel):
    status: str
    model_version: str | None = None
    detail: str | None = None


class ErrorResponse(BaseModel):
    detail: str
