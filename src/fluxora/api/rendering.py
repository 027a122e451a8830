"""Forecast responses as JSON text, built directly from numpy results.

FastAPI validates a returned object against `response_model` and encodes it field by field
(~0.5 ms for 24 points here, more than the model call). The forecast routes instead return
a ready `Response` whose body has exactly the shape of `ForecastResponse` /
`BatchForecastResponse` (the routes keep `response_model` for the OpenAPI document; a test
validates these bodies against the schemas). The "points" array of a series is rendered once
per computed forecast (`Computed.points_json`) and reused by the forecast cache.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from fluxora.api.forecast_cache import Computed
from fluxora.models.native import Forecast
from fluxora.servicedb.models import EncodedJSON

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class JSONText(Response):
    media_type = "application/json"


_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def json_safe(value: Any) -> Any:
    """`value` (already JSON-encodable types) with every non-finite float replaced by its JSON
    literal as text ("NaN", "Infinity", "-Infinity"), so strict JSON can carry it."""
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE.get(value, "NaN")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 for a request that failed validation, as FastAPI renders it, but JSON-safe: a body
    with a NaN or Infinity literal (Python's json reads them) echoes it in `input`, and strict
    JSON rendering of that would otherwise turn the 422 into a 500."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()))}, status_code=422)


def iso_utc(values: np.ndarray) -> list[str]:
    """datetime64 UTC instants as ISO 8601 text with a Z, as pydantic writes aware datetimes."""
    values = np.asarray(values, dtype="datetime64[ns]")
    whole = bool((values.astype("int64") % 1_000_000_000 == 0).all())
    return [f"{t}Z" for t in np.datetime_as_string(values, unit="s" if whole else "us").tolist()]


def iso_utc_ns(ns: int) -> str:
    """One instant (nanoseconds since the epoch) as `iso_utc` writes it."""
    return iso_utc(np.array([ns], dtype="datetime64[ns]"))[0]


def utc_datetime(ns: int) -> datetime:
    """An integer of nanoseconds since the epoch as an aware datetime (microsecond precision)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


# Forecast values are served (and logged) rounded to this many decimals: load is in MW or kW,
# and a model's 16th decimal is noise, not information (docs/api.md).
SERVED_DECIMALS = 4
# Beyond this magnitude a float64 holds no decimals at all, and rounding (which scales by
# 10**SERVED_DECIMALS first) would overflow a finite forecast into Infinity.
_ROUND_BELOW = 2.0**52


def served(values: np.ndarray) -> list[float]:
    """`values` rounded to `SERVED_DECIMALS`; finite values stay finite, however large."""
    values = np.asarray(values, dtype="float64")
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = np.round(values, SERVED_DECIMALS)
    return np.where(np.abs(values) < _ROUND_BELOW, rounded, values).tolist()


def computed(result: Forecast, row: int, levels: Sequence[float]) -> Computed:
    """Row `row` of a model result: values for the forecast log and the rendered points, both
    rounded to `SERVED_DECIMALS`, so the log holds exactly what was served."""
    return computed_rows(result, [row], levels)[0]


def computed_rows(result: Forecast, rows: Sequence[int], levels: Sequence[float]) -> list[Computed]:
    """`computed` for many rows of one result at once (a POST of 1,000 series): the rounding,
    the timestamps' text and the floats' JSON are made for the whole block, not per row.

    The text is byte for byte what `json.dumps` (the log's columns) and the compact encoder
    (the points) write per row: `json.dumps` of a list of lists of floats separates rows by
    "], [" and floats by ", ", and a float is written as its `repr` either way."""
    if not len(rows):
        return []
    index = np.asarray(rows, dtype="int64")
    values = _row_texts(served(result.point[index]))
    named = [(_compact(str(q)), _row_texts(served(result.quantiles[q][index]))) for q in levels]
    times = _iso_rows(np.asarray(result.times[index], dtype="datetime64[ns]"))
    out = []
    for r in range(len(index)):
        point, at = values[r], times[r]
        quantiles: EncodedJSON | None = None
        if named:
            per_level = [(name, q[r]) for name, q in named]
            inner = [",".join(f"{name}:{q[k]}" for name, q in per_level) for k in range(len(point))]
            quantiles = EncodedJSON("{" + ", ".join(f"{name}: [{', '.join(q)}]" for name, q in per_level) + "}")
        else:
            inner = [""] * len(point)
        points = ",".join(
            f'{{"timestamp":"{t}","value":{v},"quantiles":{{{i}}}}}' for t, v, i in zip(at, point, inner, strict=True)
        )
        out.append(Computed(EncodedJSON(f"[{', '.join(point)}]"), quantiles, f"[{points}]"))
    return out


def _row_texts(values: list[Any]) -> list[list[str]]:
    """Each row's floats as `json.dumps` writes them, from one call for the whole block."""
    text = json.dumps(values)  # [[a, b], [c, d]]
    return [row.split(", ") if row else [] for row in text[2:-2].split("], [")]


def _iso_rows(times: np.ndarray) -> list[list[str]]:
    """`iso_utc` of each row (whole seconds unless a row has fractions), for the block at once."""
    whole = (times.astype("int64") % 1_000_000_000 == 0).all(axis=1)
    if whole.all():
        text = np.char.add(np.datetime_as_string(times, unit="s"), "Z")
        return text.tolist()
    return [iso_utc(row) for row in times]


def forecast_json(
    series_id: str,
    version: str,
    origin: str,
    age_s: float | None,
    stale: bool,
    horizon: int,
    points_json: str,
    weather: str,
    resolution: str = "h",
) -> str:
    """One `ForecastResponse` as JSON text; `weather` its rendered weather members
    (`fluxora.api.weather`)."""
    head = _compact(
        {
            "series_id": series_id,
            "model_version": version,
            "origin": origin,
            "feature_age_seconds": age_s,
            "stale": stale,
            "horizon": horizon,
            "resolution": resolution,
        }
    )
    return f'{head[:-1]},{weather},"points":{points_json}}}'


def batch_json(version: str, forecasts: list[str]) -> str:
    """A `BatchForecastResponse` as JSON text from rendered `ForecastResponse`s."""
    return f'{{"model_version":{_compact(version)},"forecasts":[{",".join(forecasts)}]}}'
