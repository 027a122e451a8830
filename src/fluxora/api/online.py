"""Online feature reads for the service: the latest state of each series from Feast."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fluxora.errors import FeatureStoreError
from fluxora.features import store as fs
from fluxora.paths import Home

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class OnlineStates:
    """Latest states of the series that were found, in request order, plus those that were not."""

    series_ids: list[str]
    origins: np.ndarray  # (n,) datetime64[ns], UTC
    features: dict[str, np.ndarray]  # feature name -> (n, ...) float64
    missing: list[str]


class OnlineFeatures:
    """Reads origin states from the online store (SQLite by default)."""

    def __init__(self, home: Home) -> None:
        self._home = home
        self._store: FeatureStore | None = None

    def _feast(self) -> FeatureStore:
        if self._store is None:
            if not (self._home.feast_repo / "registry.db").is_file():
                raise FeatureStoreError("the feature store has not been applied yet; run `fluxora run`")
            self._store = fs.open_store(self._home)
        return self._store

    def states(self, series_ids: Sequence[str], service: str, features: Sequence[str]) -> OnlineStates:
        """One online read of `service` for all requested series; the served model's contract
        names `service` and `features`. Unknown series are listed in `missing`."""
        raw = fs.online(self._feast(), list(series_ids), service)
        found = [
            i
            for i, ts in enumerate(raw[fs.ONLINE_TIMESTAMP])
            if ts is not None and all(raw[f][i] is not None for f in features)
        ]
        origins = np.array(
            [np.datetime64(raw[fs.ONLINE_TIMESTAMP][i].replace(tzinfo=None), "ns") for i in found],
            dtype="datetime64[ns]",
        )
        values = {f: np.array([np.asarray(raw[f][i], dtype="float64") for i in found]) for f in features}
        found_set = set(found)
        missing = [s for i, s in enumerate(series_ids) if i not in found_set]
        return OnlineStates([series_ids[i] for i in found], origins, values, missing)
