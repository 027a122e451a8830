"""The issued weather forecast in a served state: which steps of a forecast used it, its vintage.

A model trained on issued forecasts (contract weather `issued`) reads `temp_forecast` from the
online store's `weather_forecast` view. The row there is only this origin's when its
`weather_origin` equals the load state's origin (a series whose forecast went stale keeps an
older row); otherwise the forecast counts as missing. Steps without a forecast value fall back
to persistence inside the model (`fluxora.models.native.target_temperature`); the response
names them, and `/metrics` counts them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from fluxora.api.rendering import iso_utc
from fluxora.features.names import TEMP_FORECAST, WEATHER_ISSUED_AT, WEATHER_ORIGIN
from fluxora.models.native import WEATHER_ISSUED, Contract

ONLINE_EXTRA = (WEATHER_ISSUED_AT, WEATHER_ORIGIN)  # read next to the state of an issued-forecast model
_NONE_JSON = '"weather_issued_at":null,"weather_fallback_steps":null'


def online_features(contract: Contract) -> tuple[str, ...]:
    """What the online read asks for: the model's state, plus the forecast's vintage and origin."""
    extra = ONLINE_EXTRA if contract.weather == WEATHER_ISSUED else ()
    return (*contract.state_features, *extra)


@dataclass(frozen=True)
class Used:
    """Per forecast: the rendered JSON members, and how many steps fell back to persistence."""

    members: list[str]
    fallback_steps: int
    without_forecast: int  # forecasts with no forecast step at all
    # For the forecast log, per forecast: the vintage used (None: none), the steps that fell back
    # to persistence (None: a model that reads no weather forecast).
    issued: list[datetime | None]
    fallbacks: list[int | None]


def apply(features: dict[str, np.ndarray], origins: np.ndarray, contract: Contract, horizon: int) -> Used:
    """Blank forecast rows that are not the origin's own, drop the vintage columns from
    `features` (in place: the model reads the rest), and say what each forecast used."""
    n = len(origins)
    if contract.weather != WEATHER_ISSUED:
        return Used([_NONE_JSON] * n, 0, 0, [None] * n, [None] * n)
    given = np.asarray(features.get(TEMP_FORECAST, np.full((n, 0), np.nan)), dtype="float64")
    if given.ndim != 2:
        given = np.full((n, 0), np.nan)
    cells = np.full((n, horizon), np.nan)
    width = min(horizon, given.shape[1])
    cells[:, :width] = given[:, :width]
    issued = features.pop(WEATHER_ISSUED_AT, None)
    origin_s = features.pop(WEATHER_ORIGIN, None)
    if origin_s is not None:  # from the online store: its row must be for this very origin
        own = np.asarray(origin_s, dtype="float64") == np.asarray(origins, dtype="datetime64[s]").astype("float64")
        cells[~own] = np.nan
        given = given.copy()
        given[~own] = np.nan
        features[TEMP_FORECAST] = given
    used = np.isfinite(cells)
    stamps: list[str | None] = [None] * n
    vintages: list[datetime | None] = [None] * n
    if issued is not None:
        values = np.asarray(issued, dtype="float64")
        ok = np.isfinite(values) & used.any(axis=1)
        if ok.any():
            seconds = values[ok].astype("int64")
            text = iso_utc(seconds.astype("datetime64[s]"))
            for row, t, s in zip(np.flatnonzero(ok).tolist(), text, seconds.tolist(), strict=True):
                stamps[row] = t
                vintages[row] = datetime.fromtimestamp(s, UTC)
    members = []
    for i in range(n):
        missing = (np.flatnonzero(~used[i]) + 1).tolist()
        members.append(f'"weather_issued_at":{json.dumps(stamps[i])},"weather_fallback_steps":{json.dumps(missing)}')
    fallbacks: list[int | None] = [int(k) for k in (~used).sum(axis=1).tolist()]
    return Used(members, int((~used).sum()), int((~used.any(axis=1)).sum()), vintages, fallbacks)
