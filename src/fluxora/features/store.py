"""The Feast wrapper: store config, offline sources, apply, materialize, point-in-time and online reads.

The definitions live in `feature_repo/`; their source paths expand from $FLUXORA_HOME, which
`use_home` sets (entry points call it, not this module at import). The store's config (registry,
offline and online store) is rendered from `InfraConfig` (`store_config`): SQLite online store and
file registry under FLUXORA_HOME by default, Redis and a SQL registry when `conf/infra` says so.
The features step writes the rendered config to `$FLUXORA_HOME/feast/feature_store.yaml`, so readers
that only know the home (the API, `fluxora status`, `feast -f ...` by hand) open the same store.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fluxora.config import InfraConfig
from fluxora.data.io import atomic_write, atomic_write_text
from fluxora.data.schema import SERIES_ID
from fluxora.errors import FeatureStoreError
from fluxora.features.names import EVENT_TIMESTAMP, LOAD_HISTORY
from fluxora.paths import HOME_ENV, Home, project_root

if TYPE_CHECKING:
    from feast import FeatureStore

OFFLINE_FILE = "origin_state.parquet"
PROJECT = "fluxora"
STORE_YAML = "feature_store.yaml"
OFFLINE_STORE_TYPE = "fluxora.features.offline_store.DuckDBAsofOfflineStore"


def use_home(home: Home) -> None:
    """Point Feast's config and definitions at this FLUXORA_HOME."""
    os.environ[HOME_ENV] = str(home.root)


def feature_repo_dir() -> Path:
    return project_root() / "feature_repo"


def offline_path(home: Home) -> Path:
    return home.features_dir / OFFLINE_FILE


def table_path(home: Home, view: str) -> Path:
    """The offline parquet source of a feature view (see feature_repo/definitions.py)."""
    return home.features_dir / f"{view}.parquet"


def writer_options(schema: pa.Schema) -> dict[str, Any]:
    """How the offline tables are encoded: zstd (level 1), with dictionaries only for columns that
    are not floats. A history window repeats the one before it shifted by a step, which zstd's
    matches find and a per-value dictionary does not: a year of hourly origin states is 3.7x
    smaller than with pyarrow's default (snappy, every column dictionary-encoded), written 1.8x
    and read 1.5x as fast (`benchmarks/offline_encoding.py`)."""

    def floats(kind: pa.DataType) -> bool:
        while pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            kind = kind.value_type
        return bool(pa.types.is_floating(kind))

    keep = [field.name for field in schema if not floats(field.type)]
    return {"compression": "zstd", "compression_level": 1, "use_dictionary": keep}


def write_offline(table: pa.Table, home: Home, view: str = "origin_state") -> Path:
    """Write one offline source atomically (a reader never sees a partial file)."""
    return atomic_write(table_path(home, view), lambda tmp: pq.write_table(table, tmp, **writer_options(table.schema)))


def redis_connection_string(url: str) -> str:
    """`redis[s]://[[user]:password@]host:port/db` -> Feast's `host:port,db=N[,username=..,password=..,ssl=true]`."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise FeatureStoreError(f"infra.redis_url must look like redis://host:port/db, got {url!r}")
    items = [f"{parts.hostname}:{parts.port or 6379}"]
    db = parts.path.strip("/")
    if db:
        items.append(f"db={int(db)}")
    if parts.username:
        items.append(f"username={unquote(parts.username)}")
    if parts.password:
        # Feast splits its string on "," and the first "=": a password must not contain ",".
        items.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        items.append("ssl=true")
    return ",".join(items)


def store_config(home: Home, infra: InfraConfig, project: str = PROJECT) -> dict[str, Any]:
    """The `feature_store.yaml` content for this home and infrastructure (a plain dict)."""
    registry: dict[str, Any] | str
    if infra.feast_registry_url:
        registry = {"registry_type": "sql", "path": infra.feast_registry_url, "cache_ttl_seconds": 60}
    else:
        registry = str(home.feast_repo / "registry.db")
    online: dict[str, Any]
    if infra.online_store == "sqlite":
        online = {"type": "sqlite", "path": str(home.feast_repo / "online.db")}
    elif infra.online_store == "redis":
        if not infra.redis_url:
            raise FeatureStoreError("infra.online_store is redis but infra.redis_url is empty")
        online = {"type": "redis", "connection_string": redis_connection_string(infra.redis_url)}
    else:
        raise FeatureStoreError(f"infra.online_store: unknown store {infra.online_store!r} (known: sqlite, redis)")
    return {
        "project": project,
        "provider": "local",
        "registry": registry,
        "offline_store": {"type": OFFLINE_STORE_TYPE},
        "online_store": online,
        "entity_key_serialization_version": 3,
    }


def write_store_config(home: Home, infra: InfraConfig, project: str = PROJECT) -> Path:
    """Render the store config into FLUXORA_HOME (owner-only: it may hold a Redis password)."""
    import yaml

    text = "# Rendered from conf/infra by fluxora (fluxora.features.store); do not edit.\n"
    text += yaml.safe_dump(store_config(home, infra, project), sort_keys=False)
    path = atomic_write_text(home.feast_repo / STORE_YAML, text)
    path.chmod(0o600)
    return path


def open_store(
    home: Home, infra: InfraConfig | None = None, project: str = PROJECT, offline_store: dict[str, Any] | None = None
) -> FeatureStore:
    """A FeatureStore over feature_repo/ for this home.

    With `infra`, the config is rendered from it; without, the config the features step wrote
    to the home is used (else the local default), so readers open the store that was applied.
    `offline_store` replaces the offline store's config (e.g. `{"type": "duckdb"}`, Feast's stock
    store, for comparisons).
    """
    import yaml
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    use_home(home)
    home.feast_repo.mkdir(parents=True, exist_ok=True)
    rendered = home.feast_repo / STORE_YAML
    if infra is not None:
        raw = store_config(home, infra, project)
    elif rendered.is_file():
        raw = yaml.safe_load(rendered.read_text())
    else:
        raw = store_config(home, InfraConfig(), project)
    if offline_store is not None:
        raw = raw | {"offline_store": offline_store}
    repo = feature_repo_dir()
    return FeatureStore(repo_path=str(repo), config=RepoConfig(repo_path=repo, **raw))


def registry_exists(home: Home) -> bool:
    """Whether `apply` has run for this home (file registry present, or a SQL registry configured)."""
    import yaml

    rendered = home.feast_repo / STORE_YAML
    if rendered.is_file() and isinstance(yaml.safe_load(rendered.read_text()).get("registry"), dict):
        return True
    return (home.feast_repo / "registry.db").is_file()


def definitions(repo: Path) -> list[Any]:
    """Entities, feature views and services declared in the repo's .py files, loaded afresh.

    Feast's own `parse_repo` caches the modules in `sys.modules` and names them relative to
    the cwd, so a second FLUXORA_HOME in one process would reuse the first one's source path.
    """
    from feast import Entity, FeatureService, FeatureView

    found: list[Any] = []
    for file in sorted(repo.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"_fluxora_feature_repo_{file.stem}", file)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for value in vars(module).values():
            if isinstance(value, Entity | FeatureView | FeatureService) and all(value is not f for f in found):
                found.append(value)
    return found


def apply(store: FeatureStore) -> list[str]:
    """`feast apply` for the definitions in feature_repo/; returns the applied object names."""
    objects = definitions(Path(store.repo_path))
    if not objects:
        raise FeatureStoreError(f"no Feast definitions found in {store.repo_path}")
    store.apply(objects)
    return sorted(o.name for o in objects)


@dataclass(frozen=True)
class Published:
    """An applied, materialized store: its online store holds the newest row per series and view."""

    home: Home
    store: FeatureStore
    applied: list[str]
    materialized_until: pd.Timestamp


def publish(home: Home, tables: dict[str, pa.Table], infra: InfraConfig, project: str = PROJECT) -> Published:
    """Write the offline sources and the store config, apply the definitions, materialize the latest state."""
    for view, table in tables.items():
        write_offline(table, home, view)
    return _apply_and_materialize(home, [_latest_rows(t) for t in tables.values()], infra, project)


def republish(home: Home, views: list[str], infra: InfraConfig, project: str = PROJECT) -> Published:
    """`publish` for offline sources already written: apply the definitions and materialize the
    latest state again (the online store may have lost it, or the infra may have changed)."""
    latest = [_latest_rows(pq.read_table(table_path(home, v), columns=[SERIES_ID, EVENT_TIMESTAMP])) for v in views]
    return _apply_and_materialize(home, latest, infra, project)


def _apply_and_materialize(home: Home, latest: list[pd.Series], infra: InfraConfig, project: str) -> Published:
    """Render the store config, apply the definitions, materialize the window holding every
    (view, series)'s newest row: all the online store keeps, so materialization need not scan
    (and Feast need not deduplicate) the whole history."""
    write_store_config(home, infra, project)
    store = open_store(home, infra, project)
    applied = apply(store)
    start, end = _window(latest)
    materialize(store, start.to_pydatetime(), end.to_pydatetime())
    return Published(home, store, applied, end)


def publish_batches(
    home: Home,
    batches: Iterable[dict[str, pa.Table]],
    infra: InfraConfig,
    whole: dict[str, pa.Table] | None = None,
    project: str = PROJECT,
) -> tuple[Published, dict[str, int]]:
    """`publish` for tables that arrive in series batches (each view's file is written batch by
    batch, so memory holds one batch), plus `whole` tables written at once. Returns the rows per view."""
    rows, latest = write_offline_batches(home, batches)
    for view, table in (whole or {}).items():
        write_offline(table, home, view)
        rows[view] = table.num_rows
        latest.append(_latest_rows(table))
    return _apply_and_materialize(home, latest, infra, project), rows


ROW_GROUP_ROWS = 65_536  # small row groups: a series range filter skips most of a large file


def write_offline_batches(home: Home, batches: Iterable[dict[str, pa.Table]]) -> tuple[dict[str, int], list[pd.Series]]:
    """Append each batch's tables to their views' files; every file appears at once when all are written.

    Returns the rows per view and, per table, each series' newest event timestamp."""
    writers: dict[str, pq.ParquetWriter] = {}
    temps: dict[str, Path] = {}
    rows: dict[str, int] = {}
    latest: list[pd.Series] = []
    try:
        for batch in batches:
            for view, table in batch.items():
                if view not in writers:
                    temps[view] = table_path(home, view).with_suffix(".parquet.partial")
                    temps[view].parent.mkdir(parents=True, exist_ok=True)
                    writers[view] = pq.ParquetWriter(temps[view], table.schema, **writer_options(table.schema))
                writers[view].write_table(table.cast(writers[view].schema), row_group_size=ROW_GROUP_ROWS)
                rows[view] = rows.get(view, 0) + table.num_rows
                latest.append(_latest_rows(table))
        for writer in writers.values():
            writer.close()
        for view, tmp in temps.items():
            tmp.replace(table_path(home, view))
    except BaseException:
        for view, writer in writers.items():
            writer.close()
            temps[view].unlink(missing_ok=True)
        raise
    return rows, latest


def _latest_rows(table: pa.Table) -> pd.Series:
    if not table.num_rows:
        return pd.Series(dtype="datetime64[ns, UTC]")
    return table.select([SERIES_ID, EVENT_TIMESTAMP]).to_pandas().groupby(SERIES_ID)[EVENT_TIMESTAMP].max()


def _window(latest: list[pd.Series]) -> tuple[pd.Timestamp, pd.Timestamp]:
    stamps = pd.concat([s for s in latest if len(s)]) if any(len(s) for s in latest) else None
    if stamps is None:
        raise FeatureStoreError("no feature rows to materialize")
    return stamps.min(), stamps.max()


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load the latest state per series in [start, end] into the online store."""
    with plain_output():
        store.materialize(start_date=start, end_date=end + timedelta(seconds=1))


_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # ANSI escape sequences (colours, cursor moves)


class PlainLines(io.TextIOBase):
    """A stream for logs: colour codes removed, and a progress bar redrawn in place (carriage
    returns) reduced to its final state, written on through whole lines."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.target.write(self.plain(line) + "\n")
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def finish(self) -> None:
        if self.pending.strip():
            self.target.write(self.plain(self.pending) + "\n")
        self.pending = ""
        self.flush()

    @staticmethod
    def plain(line: str) -> str:
        drawn = next((part for part in reversed(line.split("\r")) if part.strip()), "")
        return _CONTROL.sub("", drawn).rstrip()


@contextmanager
def plain_output() -> Iterator[None]:
    """Feast prints colour codes (colorama) to stdout and tqdm bars to stderr whatever they are
    connected to: where one is not a terminal, what it gets is made plain (`PlainLines`)."""
    with ExitStack() as stack:
        streams = []
        for name, redirect in (("stdout", redirect_stdout), ("stderr", redirect_stderr)):
            current = getattr(sys, name)
            if not current.isatty():
                streams.append(plain := PlainLines(current))
                stack.enter_context(redirect(plain))
        try:
            yield
        finally:
            for plain in streams:
                plain.finish()


def historical(store: FeatureStore, entity_df: pd.DataFrame, service: str) -> pd.DataFrame:
    """Point-in-time join: features as known at each entity row's `event_timestamp`."""
    try:
        feature_service = store.get_feature_service(service)
    except Exception as exc:
        raise FeatureStoreError(
            f"feature service {service!r} not found; run `fluxora run` (feast apply) first"
        ) from exc
    job = store.get_historical_features(entity_df=entity_df, features=feature_service)
    return job.to_df()


ONLINE_TIMESTAMP = "event_timestamp"


def online(store: FeatureStore, series_ids: list[str], service: str) -> dict[str, list[Any]]:
    """Latest materialized state for each series; `event_timestamp` is the origin (UTC) or None."""
    feature_service = store.get_feature_service(service)
    response = store.get_online_features(features=feature_service, entity_rows=[{"series_id": s} for s in series_ids])
    raw = response.to_dict(include_event_timestamps=True)
    seconds = raw.get(f"{LOAD_HISTORY}__ts", [0] * len(series_ids))
    raw[ONLINE_TIMESTAMP] = [
        datetime.fromtimestamp(s, tz=UTC) if s and value is not None else None
        for s, value in zip(seconds, raw[LOAD_HISTORY], strict=True)
    ]
    return raw


def offline_latest(home: Home) -> pd.DataFrame:
    """Latest offline event timestamp per series (what materialization should have loaded)."""
    table = pq.read_table(offline_path(home), columns=["series_id", EVENT_TIMESTAMP])
    return table.to_pandas().groupby("series_id")[EVENT_TIMESTAMP].max().reset_index()


def training_set(
    home: Home, origins: Mapping[str, Iterable[Any]], service: str, series_per_batch: int
) -> Iterator[pd.DataFrame]:
    """The training rows for `origins` (series -> UTC origin stamps), read through Feast point in
    time, one batch of `series_per_batch` series at a time: memory holds one batch's arrays as
    Python objects at a time, and each batch reads only its series' row groups. Origins with no
    stored state are left out; none at all is an InsufficientDataError."""
    from fluxora.errors import InsufficientDataError
    from fluxora.fanout import chunks

    # only the wanted series' keys: a unit of a few series does not read every series' index
    wanted_ids = sorted(str(sid) for sid in origins)
    states = pd.read_parquet(
        offline_path(home), columns=[SERIES_ID, EVENT_TIMESTAMP], filters=[(SERIES_ID, "in", wanted_ids)]
    )
    wanted = pd.DataFrame(
        [(sid, t) for sid, stamps in origins.items() for t in stamps], columns=[SERIES_ID, EVENT_TIMESTAMP]
    )
    wanted[EVENT_TIMESTAMP] = pd.to_datetime(wanted[EVENT_TIMESTAMP]).dt.tz_localize("UTC")
    entity_df = wanted.merge(states, on=[SERIES_ID, EVENT_TIMESTAMP], how="inner")
    if entity_df.empty:
        raise InsufficientDataError("the offline feature store holds none of the training origins; run features")
    store = open_store(home)
    ids = entity_df[SERIES_ID].astype(str)
    groups = chunks(sorted(ids.unique()), series_per_batch)
    return (historical(store, entity_df[ids.isin(g)].reset_index(drop=True), service) for g in groups)
