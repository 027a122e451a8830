"""`fluxora status`: what is in production and how fresh it is.

Read without Feast, MLflow, Evidently or pandas where a lighter read gives the same answer (their
imports alone took 17-27 s here): the registry from MLflow's SQLite store, freshness from the SQLite
online store's table, reports from their JSON. A tracking server or the Redis online store are read
through MLflow and Feast themselves.
"""

from __future__ import annotations

import json
import os
import struct
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fluxora.config import FluxoraConfig
from fluxora.paths import Home


def collect(cfg: FluxoraConfig, home: Home) -> dict[str, Any]:
    """Champion and its metrics, per-series online freshness, latest drift and realized accuracy.

    `home` is bound to the configured tracking server (see `fluxora.runtime.prepare`)."""
    from fluxora import registry

    has_registry = home.has_registry
    name = cfg.train.registered_model_name
    online = _freshness(cfg, home)
    return {
        "home": str(home.root),
        "champion": registry.read_champion(home, name) if has_registry else None,
        "promotions": registry.read_history(home, name) if has_registry else [],
        "online_store": online,
        "staleness": staleness(cfg, online, datetime.now(UTC)),
        "weather_forecast": _vintages(home),
        "drift": _drift(home),
        "accuracy": _accuracy(home),
    }


DAY_S = 86_400.0


def staleness(cfg: FluxoraConfig, online: dict[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    """Per series the age of its online features at `now` and whether it is past the service's
    soft limit (`serve.max_feature_age_s`, stale) and hard limit (refused); None before the store
    was materialized. `note` says in one line what is going on when something is stale."""
    if not online:
        return None
    serve = cfg.serve
    ages = {sid: (now - _utc(ts)).total_seconds() for sid, ts in online.items() if ts}
    limit = serve.max_feature_age_s
    stale = sorted((s for s, a in ages.items() if limit and a > limit), key=lambda s: -ages[s])
    refused = [s for s in stale if serve.max_feature_age_hard_s and ages[s] > serve.max_feature_age_hard_s]
    out: dict[str, Any] = {
        "limit_s": serve.max_feature_age_s,
        "hard_limit_s": serve.max_feature_age_hard_s,
        "age_s": {s: round(a, 1) for s, a in ages.items()},
        "stale": stale,
        "refused": refused,
        "note": None,
    }
    if not stale:
        return out
    young, old = (round(min(ages[s] for s in stale) / DAY_S), round(max(ages[s] for s in stale) / DAY_S))
    end = max(_utc(online[s]) for s in stale)
    span = f"{young}" if young == old else f"{young}-{old}"
    head = f"{len(stale)} of {len(ages)} series stale: features are {span} days old"
    if cfg.data.source == "synthetic":
        out["note"] = (
            f"{head}: the sample data is historical, it ends {end:%Y-%m-%d} (data.start={cfg.data.start}, "
            f"data.days={cfg.data.days}). Forecasts are served with stale: true and readiness says degraded; "
            "for sample data ending today run with data.start=<today minus data.days>, or set "
            "serve.max_feature_age_s=0 to turn the check off"
        )
    else:
        out["note"] = (
            f"{head} (latest {end:%Y-%m-%d %H:%M} UTC, limit serve.max_feature_age_s={serve.max_feature_age_s:g} s): "
            "no new data reached the online store; check ingest and materialization (`fluxora run`)"
        )
    return out


def _freshness(cfg: FluxoraConfig, home: Home) -> dict[str, Any] | None:
    """Latest online feature timestamp (ISO, UTC) per series of the offline store, None per series
    not materialized; None when the store was never applied."""
    store_yaml = _store_yaml(home)
    online = store_yaml.get("online_store") or {}
    offline = home.features_dir / OFFLINE_FILE
    if online.get("type") != "sqlite" or not offline.is_file():
        return _freshness_feast(cfg, home)
    series = _offline_series(offline, home.root / "cache" / SERIES_CACHE)
    stamps = _sqlite_origins(Path(online["path"]), store_yaml.get("project", "fluxora"))
    if stamps is None:
        return None
    return {sid: (stamps[sid].isoformat() if sid in stamps else None) for sid in series}


def _vintages(home: Home) -> dict[str, str] | None:
    """The latest issue time (ISO, UTC) of the stored weather forecasts per series; None
    without a forecast source."""
    if not home.weather_forecasts.is_file():
        return None
    import pyarrow.parquet as pq

    table = pq.read_table(home.weather_forecasts, columns=[JOIN_KEY, "issued_at"])
    latest = table.group_by(JOIN_KEY).aggregate([("issued_at", "max")]).sort_by(JOIN_KEY)
    stamps = latest["issued_at_max"].to_pylist()  # aware datetimes (the column is UTC)
    return {
        sid: t.astimezone(UTC).replace(microsecond=0).isoformat()
        for sid, t in zip(latest[JOIN_KEY].to_pylist(), stamps, strict=True)
    }


# The names below are Feast's and the feature repo's (`fluxora.features.store`, feature_repo/);
# tests/cli/test_fast_cli.py checks this read against Feast's own on a materialized home.
OFFLINE_FILE = "origin_state.parquet"
ORIGIN_VIEW = "origin_state"  # the view holding `load_history`, whose timestamp is the origin
JOIN_KEY = "series_id"
_STRING = 2  # feast ValueType.STRING


def _store_yaml(home: Home) -> dict[str, Any]:
    import yaml

    path = home.feast_repo / "feature_store.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


SERIES_CACHE = "offline_series.json"  # under FLUXORA_HOME/cache: the offline store's series, by file stamp


def _offline_series(path: Path, cache: Path | None = None) -> list[str]:
    """The series in the offline store's file. Reading them costs ~1 s here (pyarrow's import and
    the column), so the answer is kept in `cache` for the file's size and modification time: a new
    file (the features step rewrites it) is read again. A cache that cannot be written is skipped."""
    stat = path.stat()
    stamp = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if cache is not None and cache.is_file():
        try:
            kept = json.loads(cache.read_text())
            if kept.get("file") == stamp and isinstance(kept.get("series"), list):
                return [str(s) for s in kept["series"]]
        except (OSError, ValueError):
            pass  # unreadable or half-written by an older process: read the file instead
    import pyarrow.parquet as pq

    column = pq.ParquetFile(path).read(columns=[JOIN_KEY]).column(JOIN_KEY)  # read_table would import pandas
    series = sorted(str(s) for s in column.unique().to_pylist())
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"file": stamp, "series": series}))
            tmp.replace(cache)  # atomic: a concurrent reader sees the old cache or the new one
        except OSError:
            pass
    return series


def entity_key(series_id: str) -> bytes:
    """Feast's serialized entity key (serialization version 3) for one `series_id`."""
    key, value = JOIN_KEY.encode(), series_id.encode()
    return struct.pack("<III", 1, _STRING, len(key)) + key + struct.pack("<II", _STRING, len(value)) + value


def _series_of(key: bytes) -> str:
    (n_keys,) = struct.unpack_from("<I", key, 0)
    offset = 4
    for _ in range(n_keys):
        (length,) = struct.unpack_from("<I", key, offset + 4)
        offset += 8 + length
    (length,) = struct.unpack_from("<I", key, offset + 4)
    return key[offset + 8 : offset + 8 + length].decode()


def _sqlite_origins(db_path: Path, project: str) -> dict[str, datetime] | None:
    """Series -> the event timestamp of its `load_history` in Feast's SQLite online store; None when
    the store or its table does not exist (never applied)."""
    from fluxora import registry
    from fluxora.features.names import LOAD_HISTORY

    if not db_path.is_file():
        return None
    table = f"{project}_{ORIGIN_VIEW}"
    with closing(registry.open_read_only(db_path)) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is None:
            return None
        rows = db.execute(
            f'SELECT entity_key, event_ts FROM "{table}" WHERE feature_name = ? AND value IS NOT NULL', (LOAD_HISTORY,)
        ).fetchall()
    return {_series_of(bytes(key)): _utc(ts) for key, ts in rows if ts is not None}


def _utc(stamp: int | float | str) -> datetime:
    """Feast stores `event_ts` as naive UTC: epoch seconds, or ISO text in older stores."""
    if isinstance(stamp, int | float):
        return datetime.fromtimestamp(stamp, tz=UTC)
    parsed = datetime.fromisoformat(stamp)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _freshness_feast(cfg: FluxoraConfig, home: Home) -> dict[str, Any] | None:
    """The same through Feast (Redis online store, or a home whose store config was not rendered)."""
    from fluxora.features import store as fs

    if not fs.offline_path(home).is_file() or not fs.registry_exists(home):
        return None
    series = fs.offline_latest(home)["series_id"].tolist()
    online = fs.online(fs.open_store(home), series, cfg.features.feature_service)
    stamps = online[fs.ONLINE_TIMESTAMP]
    return {sid: (ts.isoformat() if ts is not None else None) for sid, ts in zip(series, stamps, strict=True)}


def _report(path: Path) -> dict[str, Any] | None:
    """A monitoring report's JSON, or None before the first run wrote it."""
    return json.loads(path.read_text()) if path.is_file() else None


def _drift(home: Home) -> dict[str, Any] | None:
    path = home.drift_json
    if (raw := _report(path)) is None:
        return None
    keep = ("status", "reason", "drifted", "drift_share", "n_drifted", "n_columns", "html_path", "json_path")
    out = {k: raw.get(k) for k in keep} | {"report": str(path)}
    if "series_drifted" in raw:  # per-series drift against each series' own history
        out |= {k: raw.get(k) for k in ("series_drifted", "series_insufficient", "new_series", "weather", "windows")}
    elif (series_path := home.drift_series).is_file():  # a report from before
        series = json.loads(series_path.read_text())["series"]
        out["series_drifted"] = sorted(s for s, r in series.items() if r["drifted"])
        out["series_insufficient"] = sorted(s for s, r in series.items() if r["status"] != "ok")
    decisions = home.decisions
    if decisions.is_file() and (lines := decisions.read_text().splitlines()):
        out["last_decision"] = json.loads(lines[-1])
    return out


def _accuracy(home: Home) -> dict[str, Any] | None:
    """The latest realized-accuracy summary (overall figures, counts, decay), without the tables."""
    path = home.accuracy_json
    if (raw := _report(path)) is None:
        return None
    keep = ("status", "reason", "points", "forecasts", "interval", "nominal_coverage", "decay", "generated_at")
    worst = sorted(
        ((s, r["mae"]) for s, r in raw.get("by_series", {}).items() if r["status"] == "ok" and r["mae"] is not None),
        key=lambda kv: -kv[1],
    )
    return {k: raw.get(k) for k in keep} | {
        "overall": raw.get("overall"),
        "by_weather": raw.get("by_weather"),
        "series_insufficient": raw.get("series_insufficient", []),
        "worst_series": [{"series_id": s, "mae": v} for s, v in worst[:3]],
        "html_path": raw.get("html_path"),
        "report": str(path),
    }
