"""EIA-930 hourly demand by balancing authority, through EIA's v2 API.

Route `electricity/rto/region-data`, facet `type=D` (demand), `frequency=hourly`: `period` is an
hour in UTC written `YYYY-MM-DDTHH`, `value` is MWh in that hour (= mean MW). The API returns at
most 5,000 rows per request, so pages are fetched with `offset` until `response.total` is reached.
The API key comes from the environment (`EIA_API_KEY`), never from config or logs.
Documented at https://www.eia.gov/opendata/documentation.php.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pandas as pd

from fluxora.data.connectors.http import DEFAULT_RETRY, RetryPolicy, get_json
from fluxora.data.errors import ConnectorError
from fluxora.data.schema import LOAD, SERIES_ID, TIMESTAMP

URL = "https://api.eia.gov/v2/electricity/rto/region-data/data/"
KEY_ENV = "EIA_API_KEY"
PAGE = 5000
PROVIDER = "EIA"


def api_key() -> str:
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise ConnectorError(
            f"{PROVIDER}: set {KEY_ENV} in the environment (free key at https://www.eia.gov/opendata/)"
        )
    return key


def demand(
    client: httpx.Client,
    respondents: list[str],
    start: pd.Timestamp,
    end: pd.Timestamp,
    key: str,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> pd.DataFrame:
    """Hourly demand for each balancing authority (e.g. PJM, CISO) from `start` to `end` (UTC hours, inclusive)."""
    if not respondents:
        raise ConnectorError(f"{PROVIDER}: no balancing authorities requested")
    frames, offset, total = [], 0, None
    while total is None or offset < total:
        params = _params(respondents, start, end, key, offset)
        body = get_json(client, URL, params, PROVIDER, policy, redact=(key,))
        page, total = parse_page(body)
        frames.append(page)
        if page.empty:
            break
        offset += len(page)
    return pd.concat(frames, ignore_index=True)


def _params(
    respondents: list[str], start: pd.Timestamp, end: pd.Timestamp, key: str, offset: int
) -> list[tuple[str, Any]]:
    fmt = "%Y-%m-%dT%H"
    return [
        ("api_key", key),
        ("frequency", "hourly"),
        ("data[0]", "value"),
        *(("facets[respondent][]", r) for r in respondents),
        ("facets[type][]", "D"),
        ("start", start.tz_convert("UTC").strftime(fmt)),
        ("end", end.tz_convert("UTC").strftime(fmt)),
        ("sort[0][column]", "period"),
        ("sort[0][direction]", "asc"),
        ("offset", offset),
        ("length", PAGE),
    ]


def parse_page(body: Any) -> tuple[pd.DataFrame, int]:
    """One page of the documented response -> (series_id, timestamp UTC, load) rows and the total row count."""
    if isinstance(body, dict) and "error" in body:
        raise ConnectorError(f"{PROVIDER}: {body['error']}")
    try:
        response = body["response"]
        rows, total = response["data"], int(response["total"])
    except (KeyError, TypeError, ValueError):
        raise ConnectorError(f"{PROVIDER}: unexpected response, no response.data/total") from None
    if not rows:
        return pd.DataFrame({SERIES_ID: [], TIMESTAMP: pd.to_datetime([], utc=True), LOAD: []}), total
    frame = pd.DataFrame(rows)
    missing = {"period", "respondent", "value"} - set(frame.columns)
    if missing:
        raise ConnectorError(f"{PROVIDER}: rows lack {sorted(missing)}")
    units = set(frame.get("value-units", pd.Series(["megawatthours"])).dropna())
    if units - {"megawatthours"}:
        raise ConnectorError(f"{PROVIDER}: expected megawatthours, got {sorted(units)}")
    stamps = pd.to_datetime(frame["period"], format="%Y-%m-%dT%H", utc=True)
    load = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype="float64")  # null -> NaN: the gate decides
    return pd.DataFrame({SERIES_ID: frame["respondent"].astype(str), TIMESTAMP: stamps, LOAD: load}), total
