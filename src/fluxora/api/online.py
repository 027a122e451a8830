"""Online feature reads for the service: the latest state of each series from Feast.

The hot path asks the online store directly (`provider.online_read`) with the feature views
resolved once per `PLAN_TTL_S`: Feast's `get_online_features` re-parses registry protos and
type-checks them on every call (~10-20 ms here), several times the cost of the read itself.
It works the same for the SQLite and the Redis online stores. Should Feast's provider API
change, reads fall back to `get_online_features`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from fluxora.errors import FeatureStoreError
from fluxora.features import store as fs
from fluxora.paths import Home

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger("fluxora.api")
PLAN_TTL_S = 60.0  # a re-applied feature repo is picked up within this
MAX_CACHED_KEYS = 10_000  # entity-key protos kept per join key (one per series asked for)


@dataclass(frozen=True)
class OnlineStates:
    """Latest states of the series that were found, in request order, plus those that were not."""

    series_ids: list[str]
    origins: np.ndarray  # (n,) datetime64[ns], UTC
    features: dict[str, np.ndarray]  # feature name -> (n, ...) float64
    missing: list[str]


@dataclass(frozen=True)
class _Plan:
    """Which feature view holds which requested feature; the first view's timestamp is the origin."""

    views: list[tuple[Any, list[str]]]
    join_key: str
    expires: float


class OnlineFeatures:
    """Reads origin states from the online store (SQLite by default, Redis in production)."""

    def __init__(self, home: Home) -> None:
        self._home = home
        self._store: FeatureStore | None = None
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}
        self._lock = threading.Lock()
        self._fast = True
        self._keys: dict[tuple[str, str], Any] = {}  # (join key, series) -> EntityKey proto

    def _feast(self) -> FeatureStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    if not fs.registry_exists(self._home):  # a file registry, or a SQL one (production)
                        raise FeatureStoreError("the feature store has not been applied yet; run `fluxora run`")
                    self._store = fs.open_store(self._home)
        return self._store

    def warm(self, service: str, features: Sequence[str]) -> None:
        """Open the store and resolve the plan now (Feast's import and registry load take
        seconds), so the first request after start-up is not the one that pays."""
        store = self._feast()
        if self._fast:
            try:
                self._plan(store, service, tuple(features))
            except FeatureStoreError:
                raise
            except Exception as exc:  # as in `states`: fall back to the public API
                log.warning("direct online reads unavailable (%s); using get_online_features", exc)
                self._fast = False

    def states(self, series_ids: Sequence[str], service: str, features: Sequence[str]) -> OnlineStates:
        """One online read of `service` for all requested series; the served model's contract
        names `service` and `features`. Unknown series are listed in `missing`."""
        store = self._feast()
        if self._fast:
            try:
                return self._direct(store, list(series_ids), service, tuple(features))
            except FeatureStoreError:
                raise
            except Exception as exc:  # Feast internals moved: keep serving through the public API
                log.warning("direct online reads unavailable (%s); using get_online_features", exc)
                self._fast = False
        return self._sdk(store, list(series_ids), service, features)

    def _plan(self, store: FeatureStore, service: str, features: tuple[str, ...]) -> _Plan:
        key = (service, features)
        plan = self._plans.get(key)
        if plan is not None and plan.expires > time.monotonic():
            return plan
        try:
            feature_service = store.get_feature_service(service)
        except Exception as exc:
            raise FeatureStoreError(f"feature service {service!r} not found: {exc}") from None
        remaining = list(features)
        views: list[tuple[Any, list[str]]] = []
        for projection in feature_service.feature_view_projections:
            names = [f.name for f in projection.features if f.name in remaining]
            if names:
                views.append((store.get_feature_view(projection.name), names))
                remaining = [f for f in remaining if f not in names]
        if remaining or not views:
            raise FeatureStoreError(f"feature service {service!r} does not provide {remaining or list(features)}")
        join_keys = {c.name for view, _ in views for c in view.entity_columns}
        if len(join_keys) != 1:
            raise FeatureStoreError(f"expected one entity join key in {service!r}, found {sorted(join_keys)}")
        # The view holding the first requested feature (the load history) dates the state.
        views.sort(key=lambda v: 0 if features[0] in v[1] else 1)
        plan = _Plan(views, join_keys.pop(), time.monotonic() + PLAN_TTL_S)
        self._plans[key] = plan
        return plan

    def _direct(
        self, store: FeatureStore, series_ids: list[str], service: str, features: tuple[str, ...]
    ) -> OnlineStates:
        plan = self._plan(store, service, features)
        keys = [self._entity_key(plan.join_key, s) for s in series_ids]
        provider = store._get_provider()
        rows: list[dict[str, Any]] = [{} for _ in series_ids]
        stamps: list[datetime | None] = [None] * len(series_ids)
        for v, (view, names) in enumerate(plan.views):
            for i, (ts, values) in enumerate(provider.online_read(store.config, view, keys, names)):
                if v == 0:
                    stamps[i] = ts
                if values:
                    for name in names:
                        if name in values:
                            rows[i][name] = _value(values[name])
        return _assemble(series_ids, stamps, rows, features)

    def _entity_key(self, join_key: str, series_id: str) -> Any:
        """The series' EntityKey proto, built once: the same series is asked for all day."""
        cached = self._keys.get((join_key, series_id))
        if cached is None:
            from feast.protos.feast.types.EntityKey_pb2 import EntityKey
            from feast.protos.feast.types.Value_pb2 import Value

            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys.clear()
            cached = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=series_id)])
            self._keys[(join_key, series_id)] = cached
        return cached

    def _sdk(self, store: FeatureStore, series_ids: list[str], service: str, features: Sequence[str]) -> OnlineStates:
        raw = fs.online(store, series_ids, service)
        rows = [{f: raw[f][i] for f in features} for i in range(len(series_ids))]
        return _assemble(series_ids, list(raw[fs.ONLINE_TIMESTAMP]), rows, tuple(features))


def _value(proto: Any) -> Any:
    kind = proto.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    value = getattr(proto, kind)
    return list(value.val) if kind.endswith("_list_val") else value


def _assemble(
    series_ids: list[str], stamps: list[datetime | None], rows: list[dict[str, Any]], features: tuple[str, ...]
) -> OnlineStates:
    found = [i for i, ts in enumerate(stamps) if ts is not None and all(rows[i].get(f) is not None for f in features)]
    origins = np.array([np.datetime64(_naive_utc(stamps[i]), "ns") for i in found], dtype="datetime64[ns]")  # type: ignore[arg-type,call-overload]
    values = {f: np.array([np.asarray(rows[i][f], dtype="float64") for i in found]) for f in features}
    found_set = set(found)
    missing = [s for i, s in enumerate(series_ids) if i not in found_set]
    return OnlineStates([series_ids[i] for i in found], origins, values, missing)


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts
