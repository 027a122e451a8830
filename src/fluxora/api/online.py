"""Online feature reads for the service: the latest state of a series from Feast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from fluxora.errors import FeatureStoreError
from fluxora.features import store as fs
from fluxora.paths import Home

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class SeriesState:
    series_id: str
    origin: datetime
    load_history: np.ndarray
    temp_history: np.ndarray


class OnlineFeatures:
    """Reads origin states from the online store (SQLite by default)."""

    def __init__(self, home: Home, feature_service: str) -> None:
        self._home = home
        self._service = feature_service
        self._store: FeatureStore | None = None

    def _feast(self) -> FeatureStore:
        if self._store is None:
            if not (self._home.feast_repo / "registry.db").is_file():
                raise FeatureStoreError("the feature store has not been applied yet; run `fluxora run`")
            self._store = fs.open_store(self._home)
        return self._store

    def latest(self, series_id: str) -> SeriesState | None:
        """The latest materialized state, or None when the series is unknown."""
        raw = fs.online(self._feast(), [series_id], self._service)
        load, temp = raw["load_history"][0], raw["temp_history"][0]
        ts = raw[fs.ONLINE_TIMESTAMP][0]
        if load is None or temp is None or ts is None:
            return None
        return SeriesState(series_id, ts, np.asarray(load, dtype="float64"), np.asarray(temp, dtype="float64"))
