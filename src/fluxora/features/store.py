"""The Feast wrapper: offline source, apply, materialize, point-in-time and online reads.

The definitions live in `feature_repo/`; their paths expand from $FLUXORA_HOME, which
`use_home` sets (entry points call it, not this module at import).
"""

from __future__ import annotations

import importlib.util
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fluxora.data.io import atomic_write
from fluxora.errors import FeatureStoreError
from fluxora.features.build import EVENT_TIMESTAMP
from fluxora.paths import HOME_ENV, Home, project_root

if TYPE_CHECKING:
    from feast import FeatureStore

OFFLINE_FILE = "origin_state.parquet"


def use_home(home: Home) -> None:
    """Point Feast's config and definitions at this FLUXORA_HOME."""
    os.environ[HOME_ENV] = str(home.root)


def feature_repo_dir() -> Path:
    return project_root() / "feature_repo"


def offline_path(home: Home) -> Path:
    return home.features_dir / OFFLINE_FILE


def write_offline(table: pa.Table, home: Home) -> Path:
    """Write the offline source atomically (a reader never sees a partial file)."""
    return atomic_write(offline_path(home), lambda tmp: pq.write_table(table, tmp))


def open_store(home: Home) -> FeatureStore:
    from feast import FeatureStore

    use_home(home)
    home.feast_repo.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(feature_repo_dir()))


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


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load the latest state per series in [start, end] into the online store."""
    store.materialize(start_date=start, end_date=end + timedelta(seconds=1))


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
    seconds = raw.get("load_history__ts", [0] * len(series_ids))
    raw[ONLINE_TIMESTAMP] = [
        datetime.fromtimestamp(s, tz=UTC) if s and value is not None else None
        for s, value in zip(seconds, raw["load_history"], strict=True)
    ]
    return raw


def offline_latest(home: Home) -> pd.DataFrame:
    """Latest offline event timestamp per series (what materialization should have loaded)."""
    table = pq.read_table(offline_path(home), columns=["series_id", EVENT_TIMESTAMP])
    return table.to_pandas().groupby("series_id")[EVENT_TIMESTAMP].max().reset_index()
