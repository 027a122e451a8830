"""Online feature reads for the service: the latest state of each series from Feast.

The hot path asks the online store directly (`provider.online_read`) with the feature views
resolved once per `PLAN_TTL_S`: Feast's `get_online_features` re-parses registry protos and
type-checks them on every call (~10-20 ms here), several times the cost of the read itself.
It works the same for the SQLite and the Redis online stores. Should Feast's provider API
change, reads fall back to `get_online_features`; a store that cannot be read (locked,
unreachable) is a FeatureStoreError, which the service answers with 503.

From the SQLite online store (the default), decoded states are also kept between requests
for as long as the store's files are unchanged (`SqliteChanges`): any commit, by a
materialization in this or another process, changes the size or modification time of the
database file or its write-ahead log. Replacing the file (`feast teardown` and a new apply)
changes its identity, and the store is then reopened: Feast's open connection would go on
reading the deleted file. Looking costs two `stat` calls; the read it saves (one query per
feature view, a protobuf per feature, lists into arrays) was about half of a forecast
request's time. A change empties the kept states, and the look comes before the read, so a
request never gets an older state than a read would give it. Redis offers no such signal,
so from Redis every request reads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fluxora.errors import FeatureStoreError
from fluxora.features import store as fs
from fluxora.features.names import TEMP_FORECAST, WEATHER_ISSUED_AT, WEATHER_ORIGIN
from fluxora.paths import Home

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger("fluxora.api")
OPTIONAL = frozenset({TEMP_FORECAST, WEATHER_ISSUED_AT, WEATHER_ORIGIN})  # may be absent for a series
PLAN_TTL_S = 60.0  # a re-applied feature repo is picked up within this
# Both bounds sit well above the series one request may ask for (`serve.max_series_per_request`,
# at most 10,000) and a store of 10,000 series: reaching one clears it, and a bound equal to the
# series asked for would clear it on every request.
MAX_CACHED_KEYS = 100_000  # entity-key protos kept per join key (one per series asked for)
MAX_KEPT_STATES = 20_000  # decoded series states kept while the SQLite online store is unchanged
# What a direct read raises when Feast's provider internals changed (reads then use the public API);
# any other failure is the store's (locked, unreachable) and a FeatureStoreError.
_API_DRIFT = (AttributeError, TypeError, ImportError, NotImplementedError)


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


@dataclass(frozen=True)
class _SeriesState:
    """One series' decoded state; `origin` is None when the store lacks the series or a feature."""

    origin: np.datetime64 | None
    values: dict[str, np.ndarray]  # read-only: kept states are shared by requests


_ABSENT = _SeriesState(None, {})


class SqliteChanges:
    """Whether a SQLite database may have changed since the last look, from the identity, size
    and modification time of its file and of its write-ahead log (a commit writes to one of
    them). `token()` is None, meaning "read, do not keep", while the file is missing or was
    modified within the last `RACY_S` seconds: a file's clock ticks coarsely (milliseconds
    on Linux, up to 2 s on some file systems), so a second commit within one tick could
    leave the same time behind. The same rule keeps git from trusting "racily clean" files."""

    RACY_S = 2.0

    def __init__(self, path: str) -> None:
        self._paths = (path, f"{path}-wal")

    def look(self) -> tuple[tuple[int, int] | None, Hashable | None]:
        """(the database file's identity, None while it is missing; the change token)."""
        seen: list[tuple[int, int, int, int] | None] = []
        newest = 0
        for n, path in enumerate(self._paths):
            try:
                st = os.stat(path)
            except OSError:
                if n == 0:
                    return None, None
                seen.append(None)
                continue
            seen.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
            newest = max(newest, st.st_mtime_ns)
        ident = (seen[0][0], seen[0][1]) if seen[0] is not None else None
        if time.time_ns() - newest < self.RACY_S * 1e9:
            return ident, None
        return ident, tuple(seen)

    def token(self) -> Hashable | None:
        return self.look()[1]


class OnlineFeatures:
    """Reads origin states from the online store (SQLite by default, Redis in production)."""

    def __init__(self, home: Home) -> None:
        self._home = home
        self._store: FeatureStore | None = None
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}
        self._lock = threading.Lock()
        self._fast = True
        self._keys: dict[tuple[str, str], Any] = {}  # (join key, series) -> EntityKey proto
        self._changes: SqliteChanges | None = None
        self._ident: tuple[int, int] | None = None  # the SQLite file Feast's connection has open
        self._kept: dict[str, _SeriesState] = {}  # series -> state, valid for `_kept_for`
        self._kept_for: tuple[Hashable, _Plan] | None = None  # (store token, the plan they were read with)
        self.reads = 0  # online-store reads made (a kept state saves one)

    def _feast(self) -> FeatureStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    if not fs.registry_exists(self._home):  # a file registry, or a SQL one (production)
                        raise FeatureStoreError("the feature store has not been applied yet; run `fluxora run`")
                    with _store_errors("open the feature store"):
                        store = fs.open_store(self._home)
                    self._changes = _changes_of(store)
                    self._store = store
        return self._store

    def warm(self, service: str, features: Sequence[str]) -> None:
        """Open the store and resolve the plan now (Feast's import and registry load take
        seconds), so the first request after start-up is not the one that pays."""
        store = self._feast()
        with _store_errors("resolve the feature service"):
            if self._fast:
                try:
                    self._plan(store, service, tuple(features))
                except _API_DRIFT as exc:  # as in `states`: fall back to the public API
                    log.warning("direct online reads unavailable (%s); using get_online_features", exc)
                    self._fast = False

    def states(self, series_ids: Sequence[str], service: str, features: Sequence[str]) -> OnlineStates:
        """One online read of `service` for all requested series; the served model's contract
        names `service` and `features`. Unknown series are listed in `missing`. A store that
        cannot be read (locked, unreachable, torn down) is a FeatureStoreError (503)."""
        token = self._look()
        store = self._feast()
        with _store_errors("read the online feature store"):
            if self._fast:
                try:
                    return self._direct(store, list(series_ids), service, tuple(features), token)
                except _API_DRIFT as exc:  # Feast's provider API moved: keep serving through the public API
                    log.warning("direct online reads unavailable (%s); using get_online_features", exc)
                    self._fast = False
            return self._sdk(store, list(series_ids), service, features)

    def _look(self) -> Hashable | None:
        """The SQLite store's change token (None: read and keep nothing). When its file was
        replaced since the last look (`feast teardown` and a new apply, by any process) the
        store is reopened: Feast's open connection would go on reading the deleted file. Opens
        the store, and with it the change tracker, on first use."""
        self._feast()
        if self._changes is None:
            return None
        ident, token = self._changes.look()
        if ident != self._ident:
            if self._ident is not None:
                log.info("the online store's file was replaced; reopening the feature store")
                with self._lock:
                    self._store = None
                    self._plans.clear()
                    self._kept, self._kept_for = {}, None
                self._feast()  # FeatureStoreError (503) if it cannot be opened; the next request tries again
            self._ident = ident
        return token

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
        self,
        store: FeatureStore,
        series_ids: list[str],
        service: str,
        features: tuple[str, ...],
        token: Hashable | None,
    ) -> OnlineStates:
        """`token` was taken before this read, never after: a commit between the two leaves a
        newer state kept under an older token, which the next look discards."""
        plan = self._plan(store, service, features)
        kept: dict[str, _SeriesState] = {}
        if token is not None:
            fresh = self._kept_for is None or self._kept_for[0] != token or self._kept_for[1] is not plan
            if fresh or len(self._kept) >= MAX_KEPT_STATES:
                self._kept = {}
                self._kept_for = (token, plan)
            kept = self._kept
        todo = [s for s in series_ids if s not in kept]
        read = self._read(store, plan, todo, features) if todo else {}
        if token is not None:
            kept.update(read)
        return _collect(series_ids, [read[s] if s in read else kept[s] for s in series_ids], features)

    def _read(
        self, store: FeatureStore, plan: _Plan, series_ids: list[str], features: tuple[str, ...]
    ) -> dict[str, _SeriesState]:
        self.reads += 1
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
        return {s: _decode(stamps[i], rows[i], features) for i, s in enumerate(series_ids)}

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
        stamps = list(raw[fs.ONLINE_TIMESTAMP])
        states = [_decode(stamps[i], {f: raw[f][i] for f in features}, tuple(features)) for i in range(len(series_ids))]
        return _collect(series_ids, states, tuple(features))


@contextmanager
def _store_errors(doing: str) -> Iterator[None]:
    """Any failure inside, but our own FeatureStoreError, as a FeatureStoreError (the service's 503)."""
    try:
        yield
    except FeatureStoreError:
        raise
    except Exception as exc:
        raise FeatureStoreError(f"could not {doing}: {exc}") from None


def _changes_of(store: FeatureStore) -> SqliteChanges | None:
    """The change tracker of a SQLite online store (its path as Feast resolves it), else None."""
    online = store.config.online_store
    if getattr(online, "type", None) != "sqlite":
        return None
    path = Path(online.path)
    if not path.is_absolute() and store.config.repo_path:
        path = Path(store.config.repo_path) / path
    return SqliteChanges(str(path))


def _value(proto: Any) -> Any:
    kind = proto.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    value = getattr(proto, kind)
    # numpy reads a repeated field ~10x faster than a list built from it (1,000 states: ~40 ms)
    return np.array(value.val, dtype="float64") if kind.endswith("_list_val") else value


def _decode(stamp: datetime | None, row: dict[str, Any], features: tuple[str, ...]) -> _SeriesState:
    """One series' read as arrays; absent unless it has a timestamp and every feature but the
    `OPTIONAL` ones (the issued weather forecast: a series without one is still served)."""
    if stamp is None or any(row.get(f) is None for f in features if f not in OPTIONAL):
        return _ABSENT
    values = {}
    for f in features:
        array = np.asarray(np.nan if row.get(f) is None else row[f], dtype="float64")
        array.flags.writeable = False
        values[f] = array
    return _SeriesState(np.datetime64(_naive_utc(stamp), "ns"), values)


def _collect(series_ids: list[str], states: list[_SeriesState], features: tuple[str, ...]) -> OnlineStates:
    """The found series' states stacked in request order; the others listed as missing."""
    found = [i for i, st in enumerate(states) if st.origin is not None]
    origins = np.array([states[i].origin for i in found], dtype="datetime64[ns]")
    values = {
        f: _stack([states[i].values[f] for i in found])
        if f in OPTIONAL
        else np.array([states[i].values[f] for i in found])
        for f in features
    }
    missing = [s for s, st in zip(series_ids, states, strict=True) if st.origin is None]
    return OnlineStates([series_ids[i] for i in found], origins, values, missing)


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """Optional features' arrays stacked, an absent one (a NaN scalar) as a row of NaN."""
    width = max((a.size for a in arrays if a.ndim), default=0)
    if width == 0:
        return np.array([float(a) for a in arrays], dtype="float64")
    out = np.full((len(arrays), width), np.nan)
    for i, a in enumerate(arrays):
        if a.ndim:
            out[i, : a.size] = a
    return out


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts
