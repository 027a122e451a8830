"""`fluxora status`: what is in production and how fresh it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fluxora.config import FluxoraConfig
from fluxora.monitoring.names import ACCURACY_REPORT, DECISIONS_FILE
from fluxora.paths import Home
from fluxora.pipeline import DRIFT_REPORT_NAME


def collect(cfg: FluxoraConfig, home: Home) -> dict[str, Any]:
    """Champion and its metrics, per-series online freshness, latest drift and realized accuracy."""
    from fluxora import registry
    from fluxora.pipeline import bound

    home = bound(cfg, home)
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
    path = home.reports / f"{DRIFT_REPORT_NAME}.json"
    if (raw := _report(path)) is None:
        return None
    keep = ("status", "reason", "drifted", "drift_share", "n_drifted", "n_columns", "html_path", "json_path")
    out = {k: raw.get(k) for k in keep} | {"report": str(path)}
    series_path = home.reports / "drift_series.json"
    if series_path.is_file():
        series = json.loads(series_path.read_text())["series"]
        out["series_drifted"] = sorted(s for s, r in series.items() if r["drifted"])
        out["series_insufficient"] = sorted(s for s, r in series.items() if r["status"] != "ok")
    decisions = home.reports / DECISIONS_FILE
    if decisions.is_file() and (lines := decisions.read_text().splitlines()):
        out["last_decision"] = json.loads(lines[-1])
    return out


def _accuracy(home: Home) -> dict[str, Any] | None:
    """The latest realized-accuracy summary (overall figures, counts, decay), without the tables."""
    path = home.reports / f"{ACCURACY_REPORT}.json"
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


def _render_accuracy(acc: dict[str, Any] | None) -> list[str]:
    if not acc:
        return ["accuracy      no report yet"]
    p = acc.get("points") or {}
    counts = f"{p.get('matured', 0)} matured, {p.get('pending', 0)} pending, {p.get('missing', 0)} missing an actual"
    if acc.get("status") != "ok":
        return [f"accuracy      insufficient data: {acc.get('reason')}", f"              points: {counts}"]
    o, d = acc["overall"], acc.get("decay") or {}
    lo, hi = acc.get("interval") or (None, None)
    cov = (
        f"{lo}-{hi} coverage: no forecast logged both quantiles"
        if o.get("coverage") is None
        else f"{lo}-{hi} coverage {o['coverage']:.2f} (nominal {acc.get('nominal_coverage')})"
    )
    lines = [
        f"accuracy      realized MAE {_num(o.get('mae'))}  MAPE {_num(o.get('mape'), '.2f')}%  {cov}",
        f"              report {acc.get('html_path')}",
        f"              points: {counts}",
    ]
    if d.get("status") == "ok":
        verdict = "DECAYED" if d.get("decayed") else "holds"
        lines.append(
            f"              {verdict}: MAE {d['mae_ratio']:.2f}x {d.get('baseline')} (threshold {d.get('threshold')})"
        )
    return lines


def _num(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def render(report: dict[str, Any]) -> str:
    lines = [f"FLUXORA_HOME  {report['home']}"]
    champ = report["champion"]
    if champ:
        m = champ["metrics"]
        lines.append(
            f"champion      {champ['name']} v{champ['version']}  MAE {m.get('mae', float('nan')):.3f}  "
            f"MAPE {m.get('mape', float('nan')):.2f}%  (best seasonal naive MAE "
            f"{m.get('baseline_mae', float('nan')):.3f})"
        )
        if champ.get("challenger") and champ["challenger"] != champ["version"]:
            lines.append(f"challenger    v{champ['challenger']}  ({champ['tags'].get('fluxora.gate', '')})")
    else:
        lines.append("champion      none (run `fluxora run`)")
    promotions = report.get("promotions") or []
    if promotions:
        lines.append(f"promotions    last {min(len(promotions), 5)} of {len(promotions)}:")
        lines += [
            f"  {p['when']}  v{p['from'] or '-'} -> v{p['to']}  by {p['who']}: {p['why']}" for p in promotions[-5:]
        ]
    online = report["online_store"]
    if online:
        lines.append("online store  latest feature timestamp per series:")
        lines += [f"  {sid:<20} {ts or 'missing'}" for sid, ts in online.items()]
    else:
        lines.append("online store  not materialized (run `fluxora run`)")
    drift = report["drift"]
    if not drift:
        lines.append("drift         no report yet")
    elif drift.get("status") == "insufficient_data":
        lines.append(f"drift         insufficient data: {drift.get('reason')}")
    else:
        lines.append(
            f"drift         {'DRIFT' if drift['drifted'] else 'no drift'} "
            f"(share {drift['drift_share']:.2f}); report {drift['html_path']}"
        )
    if drift and "series_drifted" in drift:
        lines.append(
            f"              series drifted: {len(drift['series_drifted'])}; "
            f"insufficient data: {len(drift['series_insufficient'])}"
        )
    lines += _render_accuracy(report.get("accuracy"))
    if drift and (decision := drift.get("last_decision")):
        lines.append(f"retrain       {'triggered' if decision['retrain'] else 'no'}: {decision['reason']}")
    return "\n".join(lines)
