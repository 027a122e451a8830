"""Computed forecasts, reused while their inputs are unchanged.

A forecast is a pure function of the model and its inputs: the same model version, origin
state, horizon and quantile levels give the same numbers. The online store changes a series'
state only when new data are materialized (hourly here), so between materializations every
request for a series asks the same question. The key is the model version, the series, the
state's event timestamp, a digest of the state's values, the horizon and the levels. Every
request still gets the series' current state (read from the online store, or kept by the
reader while the store is unchanged, see `online`), so a new state or a new model is a new
key: a hit is exactly what the model would compute now, never a stale answer.

Bounded: the oldest entry goes first once `max_entries` are held. One per service process.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

from fluxora.servicedb.models import EncodedJSON


@dataclass(frozen=True)
class Computed:
    """One series' forecast from one state, in the forms the service hands out, rendered as
    JSON once: a cache hit neither encodes the response nor the forecast-log row again."""

    values: EncodedJSON  # point forecast per step as a JSON list (the forecast log's column)
    quantiles: EncodedJSON | None  # JSON object: level as text -> values per step; None without levels
    points_json: str  # the response's "points" array, rendered once


def state_key(
    version: str, series_id: str, origin_ns: int, state: Iterable[np.ndarray], horizon: int, levels: tuple[float, ...]
) -> Hashable:
    """The cache key of one series' forecast; `state` holds that series' feature rows."""
    digest = hashlib.blake2b(digest_size=16)
    for row in state:
        digest.update(np.ascontiguousarray(row, dtype="float64").tobytes())
    return (version, series_id, origin_ns, digest.digest(), horizon, levels)


class ForecastCache:
    """A bounded map from `state_key` to `Computed`; `max_entries=0` turns it off."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[Hashable, Computed] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Computed | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: Hashable, value: Computed) -> None:
        if self._max <= 0:
            return
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
