"""A Feast offline store whose point-in-time join is DuckDB's `ASOF JOIN`.

Feast's stock DuckDB store (ibis) inner-joins every entity row with every feature row of
its key inside the TTL window and then deduplicates: 35x slower than `pandas.merge_asof`
for a year of hourly rows (`benchmarks/training_set.py --stock` measures it). An ASOF join picks, per entity row,
the latest feature row of the same key stamped at or before the entity timestamp, which is
exactly Feast's point-in-time rule; the TTL is then a mask (older than `ttl` -> NULL).

Used through `feature_store.yaml`: `offline_store: {type: fluxora.features.offline_store.DuckDBAsofOfflineStore}`.
Everything but `get_historical_features` is the stock DuckDB store's. Cases this join does
not cover (a SQL entity query, non-parquet sources, entity-less views, the created-timestamp
cutoff of feast#6615) fall back to the stock implementation, so results never silently differ.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeGuard

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from feast.feature_view import FeatureView
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from pydantic import StrictInt, StrictStr

_ROW_ID = "__fluxora_row_id"
_TS = "__fluxora_feature_ts"


class DuckDBAsofOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """Config of `DuckDBAsofOfflineStore`; `threads`/`memory_limit` bound DuckDB (0/"" = its defaults)."""

    type: StrictStr = "fluxora.features.offline_store.DuckDBAsofOfflineStore"
    threads: StrictInt = 0
    memory_limit: StrictStr = ""


class DuckDBAsofOfflineStore(DuckDBOfflineStore):
    """The stock DuckDB offline store with an ASOF-join `get_historical_features`."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        if entity_df is None:
            raise ValueError("get_historical_features needs an entity frame (or SQL query)")
        if not _supported(feature_views, entity_df, filter_by_created_timestamp):
            return DuckDBOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
            )
        assert isinstance(entity_df, pd.DataFrame)
        ts_col = infer_event_timestamp_from_entity_df(dict(zip(entity_df.columns, entity_df.dtypes, strict=True)))
        entity = _utc_entity(entity_df, ts_col)
        plan = [_view_plan(fv, feature_refs, full_feature_names) for fv in feature_views]
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        stamps = entity[ts_col]
        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=[c for c in entity.columns if c != ts_col],
            min_event_timestamp=stamps.min().to_pydatetime() if len(stamps) else None,
            max_event_timestamp=stamps.max().to_pydatetime() if len(stamps) else None,
        )
        return AsofRetrievalJob(entity, ts_col, plan, odfvs, full_feature_names, metadata, config.offline_store)

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: Any,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        columns = (join_key_columns, feature_name_columns, timestamp_field, created_timestamp_column)
        stock = DuckDBOfflineStore.pull_latest_from_table_or_query
        return _pull(stock, True, config, data_source, *columns, start_date, end_date)

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: Any,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        columns = (join_key_columns, feature_name_columns, timestamp_field, created_timestamp_column)
        stock = DuckDBOfflineStore.pull_all_from_table_or_query
        return _pull(stock, False, config, data_source, *columns, start_date, end_date)


def _pull(
    stock: Any,
    latest: bool,
    config: RepoConfig,
    source: Any,
    keys: list[str],
    features: list[str],
    timestamp: str,
    created: str | None,
    start: datetime | None,
    end: datetime | None,
) -> RetrievalJob:
    """Materialization's read: a DuckDB range query on a local parquet source, else the stock store's."""
    if not _parquet_file(source):
        return stock(config, source, keys, features, timestamp, created, start, end)
    return RangeRetrievalJob(source.path, keys, features, timestamp, created, start, end, latest, config.offline_store)


def _parquet_file(source: Any) -> TypeGuard[FileSource]:
    """A local parquet file: what DuckDB reads here directly."""
    return isinstance(source, FileSource) and source.path.endswith(".parquet") and "://" not in source.path


def range_sql(
    path: str,
    keys: list[str],
    features: list[str],
    timestamp: str,
    created: str | None,
    bounded: tuple[bool, bool],
    latest: bool,
) -> str:
    """The rows of one parquet source in a time range (`?` parameters for the given bounds), or
    with `latest` only each key's newest row in it (the newest created wins a tie, as in Feast).

    Materialization reads only the rows it loads: Feast's stock store reads the whole source
    into memory first (the origin states are ~0.8 kB per series-hour)."""
    columns = list(dict.fromkeys([*keys, *features, timestamp, *([created] if created else [])]))
    ts = f"CAST({_ident(timestamp)} AS TIMESTAMPTZ)"
    where = [c for c, on in ((f"{ts} >= ?", bounded[0]), (f"{ts} <= ?", bounded[1])) if on]
    sql = f"SELECT {', '.join(_ident(c) for c in columns)} FROM read_parquet({_literal(path)})"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if latest:
        order = ", ".join([f"{_ident(timestamp)} DESC", *([f"{_ident(created)} DESC"] if created else [])])
        partition = ", ".join(_ident(k) for k in keys) or "1"
        sql += f" QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}) = 1"
    return sql


class RangeRetrievalJob(RetrievalJob):
    """A source's rows in [start, end] (each key's newest with `latest`), read by DuckDB on execution."""

    def __init__(
        self,
        path: str,
        keys: list[str],
        features: list[str],
        timestamp: str,
        created: str | None,
        start: datetime | None,
        end: datetime | None,
        latest: bool,
        store_config: Any,
    ) -> None:
        super().__init__()
        self._bounds = [b for b in (start, end) if b is not None]
        bounded = (start is not None, end is not None)
        self._sql = range_sql(path, keys, features, timestamp, created, bounded, latest)
        self._store_config = store_config

    def to_sql(self) -> str:
        return self._sql

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        con = duckdb.connect()
        try:
            _configure(con, self._store_config)
            table = con.sql(self._sql, params=self._bounds or None).to_arrow_table()
            assert table is not None
            return table
        finally:
            con.close()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    @property
    def full_feature_names(self) -> bool:
        return False

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return []

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return None


def _configure(con: Any, store_config: Any) -> None:
    """UTC, and the threads and memory limit the store's config gives DuckDB."""
    con.execute("SET TimeZone = 'UTC'")
    if threads := getattr(store_config, "threads", 0):
        con.execute(f"SET threads = {int(threads)}")
    if limit := getattr(store_config, "memory_limit", ""):
        con.execute(f"SET memory_limit = {_literal(limit)}")


def _utc_entity(entity_df: pd.DataFrame, ts_col: str) -> pd.DataFrame:
    """The entity rows with a UTC event timestamp (naive means UTC, as in Feast); copies only if needed."""
    stamps = entity_df[ts_col]
    utc = isinstance(stamps.dtype, pd.DatetimeTZDtype) and str(stamps.dtype.tz) == "UTC"
    if utc and isinstance(entity_df.index, pd.RangeIndex) and entity_df.index.start == 0:
        return entity_df
    entity = entity_df.reset_index(drop=True)
    entity[ts_col] = pd.to_datetime(entity[ts_col].reset_index(drop=True), utc=True)
    return entity


def _supported(feature_views: list[FeatureView], entity_df: Any, filter_by_created: bool) -> bool:
    if not isinstance(entity_df, pd.DataFrame):
        return False
    for fv in feature_views:
        source = fv.batch_source
        if not _parquet_file(source):
            return False
        if not _join_key_map(fv) or any(v not in entity_df.columns for v in _join_key_map(fv).values()):
            return False
        if filter_by_created and source.created_timestamp_column:
            return False
    return True


def _join_key_map(fv: FeatureView) -> dict[str, str]:
    """Feature-view join key -> entity-frame column (a projection may rename them)."""
    return dict(fv.projection.join_key_map or {c.name: c.name for c in fv.entity_columns})


def _view_plan(fv: FeatureView, feature_refs: list[str], full_names: bool) -> dict[str, Any]:
    """What the SQL needs to know about one feature view: source, keys, features (source column -> output name)."""
    prefix = fv.projection.name_to_use()
    wanted = [r.split(":", 1)[1] for r in feature_refs if r.startswith(f"{prefix}:")]
    source = fv.batch_source
    assert isinstance(source, FileSource)
    to_source = {new: old for old, new in source.field_mapping.items()}  # feature name -> column in the file
    base = fv.projection.name_alias or fv.name
    features = {to_source.get(f, f): (f"{base}__{f}" if full_names else f) for f in wanted}
    ttl = fv.ttl if fv.ttl and fv.ttl > timedelta(0) else None
    return {
        "path": source.path,
        "timestamp": to_source.get(source.timestamp_field, source.timestamp_field),
        "created": source.created_timestamp_column or None,
        "keys": {to_source.get(k, k): v for k, v in _join_key_map(fv).items()},
        "features": features,
        "ttl_us": int(ttl / timedelta(microseconds=1)) if ttl else None,
    }


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def asof_sql(entity_ts: str, plan: list[dict[str, Any]], key_ranges: dict[str, tuple[str, str]] | None = None) -> str:
    """One query: the entity rows ASOF-joined with each view; features past their TTL are NULL.

    `key_ranges` (entity key column -> the entity rows' smallest and largest text key) becomes a
    filter on each view's scan: rows outside it cannot match, and DuckDB skips the parquet row
    groups whose statistics lie outside it, so retrieving a few series does not read every series."""
    selects = [_ident(_ROW_ID)]
    joins = []
    for i, view in enumerate(plan):
        alias = f"f{i}"
        key_cols = ", ".join(f"{_ident(src)} AS {_ident(dst)}" for src, dst in view["keys"].items())
        feat_cols = ", ".join(f"{_ident(src)} AS {_ident(f'__f{i}_{j}')}" for j, src in enumerate(view["features"]))
        body = (
            f"SELECT {key_cols}, CAST({_ident(view['timestamp'])} AS TIMESTAMPTZ) AS {_TS}"
            + (f", {feat_cols}" if feat_cols else "")
            + f" FROM read_parquet({_literal(view['path'])})"
        )
        ranged = [(src, key_ranges[dst]) for src, dst in view["keys"].items() if key_ranges and dst in key_ranges]
        if ranged:
            body += " WHERE " + " AND ".join(
                f"{_ident(src)} BETWEEN {_literal(lo)} AND {_literal(hi)}" for src, (lo, hi) in ranged
            )
        if view["created"]:
            # Several rows at one event time: the latest-created wins, as in Feast's dedup.
            partition = ", ".join([*(_ident(k) for k in view["keys"]), _ident(view["timestamp"])])
            body += f" QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {_ident(view['created'])} DESC) = 1"
        on = " AND ".join(f"e.{_ident(k)} = {alias}.{_ident(k)}" for k in view["keys"].values())
        joins.append(f"ASOF LEFT JOIN ({body}) {alias} ON {on} AND e.{_ident(entity_ts)} >= {alias}.{_TS}")
        fresh = (
            f"{alias}.{_TS} >= e.{_ident(entity_ts)} - to_microseconds({view['ttl_us']})"
            if view["ttl_us"]
            else f"{alias}.{_TS} IS NOT NULL"
        )
        for j, out in enumerate(view["features"].values()):
            selects.append(f"CASE WHEN {fresh} THEN {alias}.{_ident(f'__f{i}_{j}')} END AS {_ident(out)}")
    return f"SELECT {', '.join(selects)} FROM entity_rows e {' '.join(joins)}"


class AsofRetrievalJob(RetrievalJob):
    """Runs the ASOF query on execution; entity columns come back exactly as given (UTC), in order."""

    def __init__(
        self,
        entity: pd.DataFrame,
        entity_ts: str,
        plan: list[dict[str, Any]],
        odfvs: list[OnDemandFeatureView],
        full_feature_names: bool,
        metadata: RetrievalMetadata,
        store_config: Any,
    ) -> None:
        super().__init__()
        self._entity = entity
        self._entity_ts = entity_ts
        self._plan = plan
        self._odfvs = odfvs
        self._full_feature_names = full_feature_names
        self._metadata = metadata
        self._store_config = store_config

    def to_sql(self) -> str:
        return asof_sql(self._entity_ts, self._plan, self._key_ranges())

    def _key_ranges(self) -> dict[str, tuple[str, str]]:
        """Smallest and largest value of each text join key among the entity rows."""
        out = {}
        for key in {k for view in self._plan for k in view["keys"].values()}:
            values = self._entity[key]
            if len(values) and pd.api.types.is_object_dtype(values) and values.map(type).eq(str).all():
                out[key] = (str(values.min()), str(values.max()))
        return out

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        table = pa.Table.from_pandas(self._entity, preserve_index=False)
        keys = sorted({k for view in self._plan for k in view["keys"].values()})
        rows = table.select([*keys, self._entity_ts]).append_column(_ROW_ID, pa.array(np.arange(table.num_rows)))
        con = duckdb.connect()
        try:
            _configure(con, self._store_config)
            con.register("entity_rows", rows)
            features = con.sql(self.to_sql()).to_arrow_table()
            assert features is not None
        finally:
            con.close()
        # Back to the entity order (cheaper than ORDER BY in the query): position of each row id.
        position = np.empty(features.num_rows, dtype="int64")
        position[features.column(_ROW_ID).to_numpy()] = np.arange(features.num_rows)
        features = features.take(pa.array(position))
        for name in features.column_names[1:]:
            table = table.append_column(name, features.column(name))
        return table

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._odfvs

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata
