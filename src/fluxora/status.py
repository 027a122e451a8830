"""`fluxora status`: what is in production and how fresh it is."""

from __future__ import annotations

import json
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
    return {
        "home": str(home.root),
        "champion": registry.champion(home, name) if has_registry else None,
        "promotions": registry.history(home, name) if has_registry else [],
        "online_store": _freshness(cfg, home),
        "drift": _drift(home),
        "accuracy": _accuracy(home),
    }


def _freshness(cfg: FluxoraConfig, home: Home) -> dict[str, Any] | None:
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
        "series_insufficient": raw.get("series_insufficient", []),
        "worst_series": [{"series_id": s, "mae": v} for s, v in worst[:3]],
        "html_path": raw.get("html_path"),
        "report": str(path),
    }
