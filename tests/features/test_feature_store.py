"""The Feast store: config from infra, the ASOF offline store against Feast's stock DuckDB store,
Redis and SQL-registry deployments, and the feature builders (calendar, weather forecasts)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from fluxora.config import FluxoraConfig, InfraConfig
from fluxora.data.schema import SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.errors import FeatureStoreError
from fluxora.features import store as fs
from fluxora.features.build import feature_tables
from fluxora.features.calendar import calendar_frame
from fluxora.features.names import EVENT_TIMESTAMP, WEATHER_ISSUED_AT, WEATHER_ORIGIN
from fluxora.features.weather import ISSUED_AT, TARGET_TIME, TEMP_FORECAST, forecast_states
from fluxora.paths import Home
from fluxora.runtime import prepare

REDIS_URL = os.environ.get("FLUXORA_TEST_REDIS_URL", "")
POSTGRES_URL = os.environ.get("FLUXORA_TEST_POSTGRES_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="set FLUXORA_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="set FLUXORA_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"
)
V1_FEATURES = ["load_history", "temp_history", "load_mean_24h", "temp_mean_24h"]


def _unique_project() -> str:
    return f"fluxora_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def data(tiny_cfg: FluxoraConfig) -> pd.DataFrame:
    return generate(tiny_cfg.data).sort_values([SERIES_ID, TIMESTAMP], ignore_index=True)


@pytest.fixture(scope="module")
def tables(data: pd.DataFrame, tiny_cfg: FluxoraConfig) -> dict[str, pa.Table]:
    return feature_tables(data, tiny_cfg.features)


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory, tables: dict[str, pa.Table]) -> fs.Published:
    home = prepare(Home(tmp_path_factory.mktemp("store-home")))
    return fs.publish(home, tables, InfraConfig())


def _stock_store(home: Home):
    """The same repo and registry with Feast's stock (ibis) DuckDB offline store."""
    return fs.open_store(home, InfraConfig(), offline_store={"type": "duckdb"})


def _entity_rows(data: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Random rows: between hours, before the first feature row, past the TTL, unknown series, duplicates."""
    rng = np.random.default_rng(seed)
    ids = [*sorted(data[SERIES_ID].unique()), "unknown_series"]
    start, end = data[TIMESTAMP].min() - pd.Timedelta(hours=5), data[TIMESTAMP].max() + pd.Timedelta(hours=4)
    seconds = rng.integers(0, int((end - start).total_seconds()), n)
    rows = pd.DataFrame({SERIES_ID: rng.choice(ids, n), EVENT_TIMESTAMP: start + pd.to_timedelta(seconds, "s")})
    rows = pd.concat([rows, rows.iloc[:5]], ignore_index=True)  # duplicate entity rows survive as rows
    return rows.assign(row=np.arange(len(rows)))


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Sorted by the row id; arrays as tuples so frames compare cell by cell."""
    out = frame.sort_values("row", ignore_index=True)
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = [tuple(np.round(np.asarray(v, "float64"), 4)) if _is_array(v) else v for v in out[column]]
    return out


def _is_array(value: object) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def _assert_same(ours: pd.DataFrame, stock: pd.DataFrame, keys: tuple[str, ...] = (SERIES_ID,)) -> None:
    assert list(ours.columns) == list(stock.columns)
    assert len(ours) == len(stock)
    a, b = _comparable(ours), _comparable(stock)
    for column in a.columns:
        if column in (*keys, EVENT_TIMESTAMP, "row"):
            assert a[column].tolist() == b[column].tolist(), column
            continue
        left = [None if not _is_array(v) and pd.isna(v) else v for v in a[column]]
        right = [None if not _is_array(v) and pd.isna(v) else v for v in b[column]]
        assert [v is None for v in left] == [v is None for v in right], f"{column}: missing values differ"
        for x, y in zip(left, right, strict=True):
            if x is not None:
                np.testing.assert_allclose(np.asarray(x, "float64"), np.asarray(y, "float64"), rtol=1e-6)


# --- config ------------------------------------------------------------------------------


def test_store_config_follows_infra(tmp_path: Path) -> None:
    home = Home(tmp_path)
    local = fs.store_config(home, InfraConfig())
    assert local["online_store"] == {"type": "sqlite", "path": str(tmp_path / "feast" / "online.db")}
    assert local["registry"] == str(tmp_path / "feast" / "registry.db")
    assert local["offline_store"]["type"] == "fluxora.features.offline_store.DuckDBAsofOfflineStore"
    prod = fs.store_config(
        home,
        InfraConfig(
            online_store="redis",
            redis_url="redis://:s3cret@cache.internal:6380/2",
            feast_registry_url="postgresql+psycopg://u@db/feast",
        ),
        project="p",
    )
    assert prod["project"] == "p"
    assert prod["online_store"] == {"type": "redis", "connection_string": "cache.internal:6380,db=2,password=s3cret"}
    assert prod["registry"]["registry_type"] == "sql" and prod["registry"]["path"] == "postgresql+psycopg://u@db/feast"


def test_production_infra_composes_to_a_redis_store(tmp_path: Path) -> None:
    from fluxora.config import compose

    cfg = compose(["infra=production"])
    assert fs.store_config(Home(tmp_path), cfg.infra)["online_store"]["type"] == "redis"


@pytest.mark.parametrize(
    ("infra", "message"),
    [
        (InfraConfig(online_store="redis"), "redis_url is empty"),
        (InfraConfig(online_store="memcached"), "unknown store"),
        (InfraConfig(online_store="redis", redis_url="http://x"), "redis://"),
    ],
)
def test_bad_online_store_config_is_refused(tmp_path: Path, infra: InfraConfig, message: str) -> None:
    with pytest.raises(FeatureStoreError, match=message):
        fs.store_config(Home(tmp_path), infra)


def test_redis_url_becomes_feast_connection_string() -> None:
    assert fs.redis_connection_string("redis://127.0.0.1:6379/0") == "127.0.0.1:6379,db=0"
    assert fs.redis_connection_string("redis://localhost") == "localhost:6379"
    assert fs.redis_connection_string("rediss://:p%40ss@h:1/3") == "h:1,db=3,password=p@ss,ssl=true"
    assert fs.redis_connection_string("redis://app:pw@h:1/0") == "h:1,db=0,username=app,password=pw"


def test_hand_use_yaml_matches_the_local_default() -> None:
    """`feast -c feature_repo ...` by hand must open the store the pipeline writes."""
    committed = yaml.safe_load((fs.feature_repo_dir() / "feature_store.yaml").read_text())
    rendered = fs.store_config(Home(Path("/h")), InfraConfig())
    assert committed["project"] == rendered["project"]
    assert committed["offline_store"] == rendered["offline_store"]
    assert committed["online_store"]["type"] == rendered["online_store"]["type"]
    assert committed["entity_key_serialization_version"] == rendered["entity_key_serialization_version"]


def test_readers_open_the_store_that_was_published(sqlite_store: fs.Published) -> None:
    """The API and `status` open the store by home only; they get the rendered config."""
    home = sqlite_store.home
    reopened = fs.open_store(home)
    assert reopened.config.online_store.path == sqlite_store.store.config.online_store.path
    assert fs.registry_exists(home)
    assert oct((home.feast_repo / fs.STORE_YAML).stat().st_mode & 0o777) == "0o600"


# --- contracts ---------------------------------------------------------------------------


def test_v1_contract_is_unchanged_and_v2_adds_the_views(sqlite_store: fs.Published) -> None:
    store = sqlite_store.store
    v1 = store.get_feature_service("load_forecast_v1")
    assert [(p.name, [f.name for f in p.features]) for p in v1.feature_view_projections] == [
        ("origin_state", V1_FEATURES)
    ]
    v2 = store.get_feature_service("load_forecast_v2")
    assert {p.name for p in v2.feature_view_projections} == {
        "origin_state",
        "load_stats",
        "weather",
        "weather_forecast",
        "calendar",
    }
    assert sum(len(p.features) for p in v2.feature_view_projections) == 26


# --- the ASOF offline store against Feast's stock DuckDB store ------------------------------


@pytest.mark.parametrize("full_feature_names", [False, True])
def test_asof_store_equals_stock_duckdb_store(
    sqlite_store: fs.Published, data: pd.DataFrame, full_feature_names: bool
) -> None:
    from fluxora.features.offline_store import AsofRetrievalJob

    store = sqlite_store.store
    stock = _stock_store(sqlite_store.home)
    entity = _entity_rows(data, 120, seed=3)
    service = store.get_feature_service("load_forecast_v2")
    job = store.get_historical_features(entity, features=service, full_feature_names=full_feature_names)
    assert isinstance(job, AsofRetrievalJob)  # not silently the fallback
    ours = job.to_df()
    theirs = stock.get_historical_features(entity, features=service, full_feature_names=full_feature_names).to_df()
    _assert_same(ours, theirs)
    # Every case was drawn: values, no-row-yet/unknown/past-TTL NULLs.
    col = "load_stats__load_last" if full_feature_names else "load_last"
    assert ours[col].notna().sum() > 50 and ours[col].isna().sum() > 3
    # Entity rows come back in the order given, with their own columns untouched.
    pd.testing.assert_frame_equal(ours[[SERIES_ID, EVENT_TIMESTAMP, "row"]], entity.reset_index(drop=True))


def test_asof_store_respects_ttl(sqlite_store: fs.Published, data: pd.DataFrame) -> None:
    last = data.groupby(SERIES_ID)[TIMESTAMP].max()
    sid = last.index[0]
    offsets = [timedelta(0), timedelta(hours=1, minutes=59), timedelta(hours=2), timedelta(hours=2, seconds=1)]
    entity = pd.DataFrame({SERIES_ID: sid, EVENT_TIMESTAMP: [last[sid] + o for o in offsets]})
    got = fs.historical(sqlite_store.store, entity, "load_forecast_v1")
    assert got["load_mean_24h"].notna().tolist() == [True, True, True, False]


def test_asof_store_dedups_by_created_timestamp_like_stock(tmp_path: Path) -> None:
    """Several rows at one event time (a backfill): the latest-created wins in both stores, and
    the created-timestamp cutoff (feast#6615) falls back to the stock join rather than differ."""
    from feast import Entity, FeatureView, Field, FileSource
    from feast.types import Float64

    t0 = pd.Timestamp("2024-03-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "sid": ["a", "a", "a", "b", "b"],
            "ts": [t0, t0, t0 + pd.Timedelta(hours=1), t0, t0],
            "created": [t0, t0 + pd.Timedelta(days=5), t0 + pd.Timedelta(hours=1), t0 + pd.Timedelta(hours=3), t0],
            "raw_value": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    entity_def = Entity(name="thing", join_keys=["sid"])
    view = FeatureView(
        name="dup_view",
        entities=[entity_def],
        ttl=timedelta(hours=3),
        schema=[Field(name="value", dtype=Float64)],
        source=FileSource(
            name="dup_source",
            path=str(path),
            timestamp_field="ts",
            created_timestamp_column="created",
            field_mapping={"raw_value": "value"},
        ),
    )
    home = Home(tmp_path)
    home.ensure()
    ours = fs.open_store(home, InfraConfig())
    ours.apply([entity_def, view])
    stock = _stock_store(home)
    entity = pd.DataFrame(
        {
            "sid": ["a", "a", "b", "a"],
            EVENT_TIMESTAMP: [
                t0 + pd.Timedelta(minutes=30),
                t0 + pd.Timedelta(hours=2),
                t0,
                t0 + pd.Timedelta(hours=5),
            ],
            "row": [0, 1, 2, 3],
        }
    )
    a = ours.get_historical_features(entity, features=["dup_view:value"]).to_df()
    b = stock.get_historical_features(entity, features=["dup_view:value"]).to_df()
    _assert_same(a, b, keys=("sid",))
    assert _comparable(a)["value"].tolist()[:3] == [2.0, 3.0, 4.0] and pd.isna(_comparable(a)["value"].iloc[3])
    cut = ours.get_historical_features(entity, features=["dup_view:value"], filter_by_created_timestamp=True)
    assert type(cut).__name__ != "AsofRetrievalJob"


def test_materialization_pulls_equal_the_stock_stores(tmp_path: Path) -> None:
    """What materialization reads (each key's newest row in a range, or every row in it) is the
    stock DuckDB store's, read by a DuckDB query on the file instead of the whole file in memory."""
    from feast import FileSource
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStore

    from fluxora.features.offline_store import DuckDBAsofOfflineStore, RangeRetrievalJob

    t0 = pd.Timestamp("2024-03-01", tz="UTC")
    hours = [pd.Timedelta(hours=h) for h in (0, 1, 2, 2, 5)]
    frame = pd.DataFrame(
        {
            "sid": ["a", "a", "a", "b", "b"],
            "ts": [t0 + h for h in hours],
            "created": [t0, t0, t0 + pd.Timedelta(days=1), t0, t0],
            "raw_value": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    path = tmp_path / "pull.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    home = Home(tmp_path).ensure()
    config = fs.open_store(home, InfraConfig()).config
    source = FileSource(name="pull_source", path=str(path), timestamp_field="ts", created_timestamp_column="created")
    start, end = (t0 + pd.Timedelta(hours=1)).to_pydatetime(), (t0 + pd.Timedelta(hours=4)).to_pydatetime()
    for pull in ("pull_latest_from_table_or_query", "pull_all_from_table_or_query"):
        args = (config, source, ["sid"], ["raw_value"], "ts", "created", start, end)
        ours = getattr(DuckDBAsofOfflineStore, pull)(*args)
        assert isinstance(ours, RangeRetrievalJob)
        a, b = ours.to_df(), getattr(DuckDBOfflineStore, pull)(*args).to_df()
        cols = ["sid", "ts", "raw_value"]
        a, b = (f[cols].sort_values(cols).reset_index(drop=True) for f in (a, b))
        b["ts"] = pd.to_datetime(b["ts"], utc=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    latest = DuckDBAsofOfflineStore.pull_latest_from_table_or_query(*args[:-2], start, end).to_df()
    assert sorted(latest["raw_value"]) == [3.0, 4.0]  # a: its newest row in range; b: 5.0 is after `end`


# --- deployments -------------------------------------------------------------------------


@pytest.fixture
def redis_store(tmp_path: Path, tables: dict[str, pa.Table]) -> Iterator[tuple[fs.Published, str]]:
    import redis

    project = _unique_project()
    home = prepare(Home(tmp_path))
    published = fs.publish(home, tables, InfraConfig(online_store="redis", redis_url=REDIS_URL), project=project)
    yield published, project
    published.store.teardown()
    client = redis.Redis.from_url(REDIS_URL)
    leftover = list(client.scan_iter(b"*" + project.encode()))
    if leftover:
        client.delete(*leftover)
    assert not leftover, f"teardown left {len(leftover)} Redis keys of {project}"


@needs_redis
def test_redis_online_store_serves_what_was_materialized(
    redis_store: tuple[fs.Published, str], data: pd.DataFrame
) -> None:
    published, project = redis_store
    store = published.store
    assert store.config.online_store.type == "redis" and store.config.project == project
    series_ids = sorted(data[SERIES_ID].unique())
    online = fs.online(store, [*series_ids, "no_such_series"], "load_forecast_v2")
    stamps = online[fs.ONLINE_TIMESTAMP]
    assert stamps[-1] is None
    offline = fs.historical(
        store, pd.DataFrame({SERIES_ID: series_ids, EVENT_TIMESTAMP: stamps[:-1]}), "load_forecast_v2"
    )
    for i, sid in enumerate(series_ids):
        row = offline[offline[SERIES_ID] == sid].iloc[0]
        assert pd.Timestamp(stamps[i]) == data[data[SERIES_ID] == sid][TIMESTAMP].max()
        for name in ("load_history", "temp_history", "load_last", "temperature", "is_working_day"):
            np.testing.assert_allclose(np.asarray(online[name][i], "float64"), np.asarray(row[name], "float64"))
        assert online["temp_forecast"][i] is None  # no forecast source: nothing faked
    # The API's reader opens the same Redis store from the home alone.
    from fluxora.api.online import OnlineFeatures

    states = OnlineFeatures(published.home).states(series_ids, "load_forecast_v1", V1_FEATURES)
    assert states.series_ids == series_ids and states.features["load_history"].shape == (len(series_ids), 168)


@needs_postgres
def test_sql_registry_on_postgres(tmp_path: Path, tables: dict[str, pa.Table]) -> None:
    project = _unique_project()
    url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    home = prepare(Home(tmp_path))
    published = fs.publish(home, tables, InfraConfig(feast_registry_url=url), project=project)
    try:
        reopened = fs.open_store(home)  # from the rendered config: the same SQL registry
        assert reopened.config.registry.registry_type == "sql"
        services = {s.name for s in reopened.list_feature_services()}
        assert services == {f"load_forecast_v{v}" for v in range(1, 6)}
        assert fs.registry_exists(home) and not (home.feast_repo / "registry.db").exists()
        online = fs.online(reopened, ["series_000"], "load_forecast_v1")
        assert online[fs.ONLINE_TIMESTAMP][0] is not None
    finally:
        published.store.registry.delete_project(project, commit=True)


# --- builders ----------------------------------------------------------------------------


def test_calendar_flags_holidays_and_working_days_in_local_time() -> None:
    times = pd.DatetimeIndex(["2024-12-25 12:00", "2024-12-27 12:00", "2024-12-28 12:00", "2024-07-05 02:00"], tz="UTC")
    cal = calendar_frame(times, "US", "UTC")
    assert cal["is_holiday"].tolist() == [1, 0, 0, 0]
    assert cal["is_working_day"].tolist() == [0, 1, 0, 1]
    # 02:00 UTC on 5 July is still 4 July (a holiday) in New York.
    local = calendar_frame(times[3:], "US", "America/New_York")
    assert local[["hour", "is_holiday", "is_working_day"]].iloc[0].tolist() == [22, 1, 0]


def test_weather_forecast_state_uses_only_forecasts_issued_by_the_origin() -> None:
    issue_a, issue_b = pd.Timestamp("2024-01-01 00:00", tz="UTC"), pd.Timestamp("2024-01-01 06:00", tz="UTC")
    rows = []
    for issue, offset, leads in ((issue_a, 0.0, 12), (issue_b, 100.0, 6)):
        for lead in range(0, leads + 1):
            target = issue + pd.Timedelta(hours=lead)
            rows.append({SERIES_ID: "s", ISSUED_AT: issue, TARGET_TIME: target, TEMPERATURE: offset + lead})
    table = forecast_states(pd.DataFrame(rows), hours=4, max_age_hours=4).to_pandas().set_index(EVENT_TIMESTAMP)
    at = table[TEMP_FORECAST]
    # At 03:00 the latest issue is 00:00: targets 04..07 are its leads 4..7.
    np.testing.assert_array_equal(at[issue_a + pd.Timedelta(hours=3)], [4, 5, 6, 7])
    # At 06:00 the 06:00 issue is known: its leads 1..4.
    np.testing.assert_array_equal(at[issue_b], [101, 102, 103, 104])
    # Beyond the forecast's leads: NaN, and no row once staler than `hours`.
    np.testing.assert_array_equal(at[issue_b + pd.Timedelta(hours=4)], [105, 106, np.nan, np.nan])
    assert table.index.max() == issue_b + pd.Timedelta(hours=4)
    # Each row says which issue it used and which origin it is for (epoch seconds).
    assert table.loc[issue_a + pd.Timedelta(hours=3), WEATHER_ISSUED_AT] == issue_a.timestamp()
    assert table.loc[issue_b, WEATHER_ISSUED_AT] == issue_b.timestamp()
    assert (table[WEATHER_ORIGIN] == [t.timestamp() for t in table.index]).all()
    # Older than max_age_hours: stale, not used (at 05:00 the 00:00 issue is 5 h old).
    assert issue_a + pd.Timedelta(hours=5) not in table.index
    assert forecast_states(None, 4, 4).num_rows == 0


def test_weather_forecast_state_at_a_sub_hourly_step_interpolates_between_hours() -> None:
    """A 30-minute model's state: a row at every 30-minute origin, one value per 30-minute step,
    linear in time between the issued hours (not the hour's value held), NaN past the forecast."""
    issue = pd.Timestamp("2024-01-01 00:00", tz="UTC")
    rows = [
        {SERIES_ID: "s", ISSUED_AT: issue, TARGET_TIME: issue + pd.Timedelta(hours=lead), TEMPERATURE: 10.0 * lead}
        for lead in range(1, 7)
    ]
    table = forecast_states(pd.DataFrame(rows), 2, 6, step_ns=30 * 60 * 10**9).to_pandas().set_index(EVENT_TIMESTAMP)
    at = table[TEMP_FORECAST]
    half = pd.Timedelta(minutes=30)
    assert table.index[0] == issue and (np.diff(table.index.asi8) == half.value).all()
    # At 01:00 the steps are 01:30, 02:00, 02:30, 03:00: between 10 and 20, then 20, 25, 30 ...
    np.testing.assert_allclose(at[issue + pd.Timedelta(hours=1)], [15, 20, 25, 30])
    # Off the hour (01:30): 02:00, 02:30, 03:00, 03:30.
    np.testing.assert_allclose(at[issue + pd.Timedelta(hours=1) + half], [20, 25, 30, 35])
    # 00:30: its first step (01:00) is lead 1; 00:00 has no value (the issue hour is not a forecast).
    np.testing.assert_allclose(at[issue + half], [10, 15, 20, 25])
    np.testing.assert_array_equal(at[issue], [np.nan, 10, 15, 20])
    # 04:30: steps 05:00 (60), 05:30 (between 60 and the missing 07:00 lead: NaN), ...
    np.testing.assert_array_equal(at[issue + pd.Timedelta(hours=4) + half], [50, 55, 60, np.nan])
    assert (table[WEATHER_ORIGIN] == [t.timestamp() for t in table.index]).all()


def test_weather_forecast_serving_row_uses_every_issue_so_far() -> None:
    """The row at a series' last load origin (the state the online store serves) also uses
    forecasts issued after the load data end; earlier rows stay point in time."""
    last_load = pd.Timestamp("2024-01-01 03:00", tz="UTC")
    rows = [
        {SERIES_ID: "s", ISSUED_AT: issue, TARGET_TIME: issue + pd.Timedelta(hours=lead), TEMPERATURE: base + lead}
        for issue, base in (
            (pd.Timestamp("2024-01-01 00:00", tz="UTC"), 0.0),
            (last_load + pd.Timedelta(hours=2), 50.0),
        )
        for lead in range(1, 9)
    ]
    last = {
        "s": np.datetime64(last_load.tz_convert(None), "ns"),
        "no_forecast": np.datetime64("2024-01-01T03:00", "ns"),
    }
    table = forecast_states(pd.DataFrame(rows), 4, 24, last).to_pandas().set_index(EVENT_TIMESTAMP)
    assert table.index.max() == last_load  # no row after the last load
    np.testing.assert_array_equal(table[TEMP_FORECAST][last_load - pd.Timedelta(hours=1)], [3, 4, 5, 6])
    # 04:00 and 05:00 only the 00:00 run forecasts (the 05:00 run starts at 06:00); 06:00 and 07:00
    # come from the newer run, issued after the last load.
    np.testing.assert_array_equal(table[TEMP_FORECAST][last_load], [4, 5, 50 + 1, 50 + 2])
    assert table.loc[last_load, WEATHER_ISSUED_AT] == (last_load + pd.Timedelta(hours=2)).timestamp()


# --- the API's online reader ---------------------------------------------------------------


def _settled(path: Path) -> None:
    """Date the file back past `SqliteChanges.RACY_S`, as if its last write were a while ago."""
    from fluxora.api.online import SqliteChanges

    then = path.stat().st_mtime - 2 * SqliteChanges.RACY_S - 1
    os.utime(path, (then, then))


def _without_last_hour(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Every view without its rows at the latest origin: the store as it was an hour earlier."""
    import pyarrow.compute as pc

    stamps = tables["origin_state"][EVENT_TIMESTAMP]
    last = pa.scalar(pc.max(stamps).as_py(), stamps.type)
    return {
        v: t.filter(pc.fill_null(pc.not_equal(t[EVENT_TIMESTAMP], last.cast(t[EVENT_TIMESTAMP].type)), True))
        for v, t in tables.items()
    }


def test_sqlite_changes_token(tmp_path: Path) -> None:
    import sqlite3

    from fluxora.api.online import SqliteChanges

    path = tmp_path / "online.db"
    changes = SqliteChanges(str(path))
    assert changes.token() is None  # no store yet
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
    assert changes.token() is None  # written just now: not trusted yet
    _settled(path)
    token = changes.token()
    assert token is not None and changes.token() == token
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO t VALUES (1)")
    _settled(path)  # even dated back, a commit leaves a different file behind
    assert changes.token() not in (None, token)
    token = changes.token()
    replacement = tmp_path / "new.db"
    with sqlite3.connect(replacement) as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
    os.replace(replacement, path)
    _settled(path)
    assert changes.token() not in (None, token)


def test_api_reader_keeps_states_only_while_the_sqlite_store_is_unchanged(
    tmp_path: Path, tables: dict[str, pa.Table]
) -> None:
    """Between materializations the reader answers from decoded states it keeps; the next
    materialization (here one hour later) is served at once, never the state before it."""
    from fluxora.api.online import OnlineFeatures

    earlier = _without_last_hour(tables)
    home = prepare(Home(tmp_path / "home"))
    published = fs.publish(home, earlier, InfraConfig())
    online_db = Path(published.store.config.online_store.path)
    series_ids = sorted(set(tables["origin_state"][SERIES_ID].to_pylist()))

    reader = OnlineFeatures(home)
    _settled(online_db)
    first = reader.states(series_ids, "load_forecast_v1", V1_FEATURES)
    reads = reader.reads
    kept = reader.states(series_ids, "load_forecast_v1", V1_FEATURES)
    assert reader.reads == reads  # answered from kept states
    assert kept.series_ids == first.series_ids and (kept.origins == first.origins).all()
    for name in V1_FEATURES:
        np.testing.assert_array_equal(kept.features[name], first.features[name])

    fs.publish(home, tables, InfraConfig())  # the next hour, materialized by another connection
    _settled(online_db)  # asked a while after the materialization
    moved = reader.states(series_ids, "load_forecast_v1", V1_FEATURES)
    assert reader.reads == reads + 1
    assert (moved.origins - first.origins == np.timedelta64(1, "h")).all()
    expected = OnlineFeatures(home)  # a fresh reader, nothing kept
    fresh = expected.states(series_ids, "load_forecast_v1", V1_FEATURES)
    for name in V1_FEATURES:
        np.testing.assert_array_equal(moved.features[name], fresh.features[name])
    assert not np.array_equal(moved.features["load_history"], first.features["load_history"])
    # kept and newly read series together, in request order; an absent series stays absent
    mixed = reader.states([series_ids[-1], "no_such_series", series_ids[0]], "load_forecast_v1", V1_FEATURES)
    assert mixed.series_ids == [series_ids[-1], series_ids[0]] and mixed.missing == ["no_such_series"]
    np.testing.assert_array_equal(mixed.features["load_history"], fresh.features["load_history"][[-1, 0]])
    assert reader.states(["no_such_series"], "load_forecast_v1", V1_FEATURES).missing == ["no_such_series"]


def test_api_reader_reads_through_just_after_a_write_and_follows_a_replaced_file(
    tmp_path: Path, tables: dict[str, pa.Table]
) -> None:
    """Within `RACY_S` of a write nothing is kept (the file's clock may not have ticked yet);
    a store file replaced under an open reader (teardown and a new apply) is reopened, not
    read through Feast's connection to the deleted file."""
    from fluxora.api.online import OnlineFeatures

    earlier = _without_last_hour(tables)
    home = prepare(Home(tmp_path / "home"))
    online_db = Path(fs.publish(home, earlier, InfraConfig()).store.config.online_store.path)
    series_ids = sorted(set(tables["origin_state"][SERIES_ID].to_pylist()))
    reader = OnlineFeatures(home)
    os.utime(online_db)  # written just now
    before = reader.states(series_ids, "load_forecast_v1", V1_FEATURES)
    reads = reader.reads
    reader.states(series_ids, "load_forecast_v1", V1_FEATURES)
    assert reader.reads == reads + 1  # read again: nothing was kept
    _settled(online_db)
    reader.states(series_ids, "load_forecast_v1", V1_FEATURES)
    reader.states(series_ids, "load_forecast_v1", V1_FEATURES)
    assert reader.reads == reads + 2  # settled: kept after one read

    other = prepare(Home(tmp_path / "other"))  # the same project applied afresh, an hour later
    replacement = Path(fs.publish(other, tables, InfraConfig()).store.config.online_store.path)
    os.replace(replacement, online_db)
    _settled(online_db)
    after = reader.states(series_ids, "load_forecast_v1", V1_FEATURES)
    assert (after.origins - before.origins == np.timedelta64(1, "h")).all()


def test_api_reader_reports_an_unreadable_store_and_keeps_its_fast_path(
    tmp_path: Path, tables: dict[str, pa.Table]
) -> None:
    """A store that cannot be read is a FeatureStoreError (the service's 503), not a reason to
    give up the direct reads for good."""
    from fluxora.api.online import OnlineFeatures

    home = prepare(Home(tmp_path / "home"))
    online_db = Path(fs.publish(home, tables, InfraConfig()).store.config.online_store.path)
    reader = OnlineFeatures(home)
    assert reader.states(["series_000"], "load_forecast_v1", V1_FEATURES).series_ids == ["series_000"]
    online_db.write_bytes(b"not a database" * 1000)
    with pytest.raises(FeatureStoreError, match="could not read the online feature store"):
        reader.states(["series_000"], "load_forecast_v1", V1_FEATURES)
    assert reader._fast


def test_api_reader_reports_a_torn_down_store(tmp_path: Path, tables: dict[str, pa.Table]) -> None:
    """Store file and registry gone (a teardown, no new apply yet): a FeatureStoreError (503)."""
    import sqlite3

    from fluxora.api.online import OnlineFeatures

    home = prepare(Home(tmp_path / "home"))
    online_db = Path(fs.publish(home, tables, InfraConfig()).store.config.online_store.path)
    reader = OnlineFeatures(home)
    assert reader.states(["series_000"], "load_forecast_v1", V1_FEATURES).series_ids == ["series_000"]
    (home.feast_repo / "registry.db").unlink()
    online_db.unlink()
    sqlite3.connect(online_db).close()  # an empty file where the store was
    with pytest.raises(FeatureStoreError, match="has not been applied"):
        reader.states(["series_000"], "load_forecast_v1", V1_FEATURES)


def test_offline_tables_are_zstd_with_dictionaries_only_off_floats(
    sqlite_store: fs.Published, tables: dict[str, pa.Table]
) -> None:
    """Float columns and float histories are plain zstd (the windows' shifted repeats compress,
    a per-value dictionary does not); ids, stamps and calendar integers keep their dictionaries;
    every table reads back as written."""
    home = sqlite_store.home
    for view in ("origin_state", "load_stats", "calendar"):
        assert pq.read_table(fs.table_path(home, view)).equals(
            tables[view].cast(pq.read_schema(fs.table_path(home, view)))
        )
        meta = pq.ParquetFile(fs.table_path(home, view)).metadata
        columns = {
            meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)
        }
        assert {c.compression for c in columns.values()} == {"ZSTD"}, view
        for path, column in columns.items():
            schema_type = pq.read_schema(fs.table_path(home, view)).field(path.split(".")[0]).type
            is_float = pa.types.is_floating(schema_type) or (
                pa.types.is_list(schema_type) and pa.types.is_floating(schema_type.value_type)
            )
            dictionary = any("DICTIONARY" in e for e in column.encodings)
            assert dictionary != is_float, (view, path, column.encodings)
