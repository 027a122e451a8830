"""What the commands print: the run summary and the status report as text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `status` renders without importing the steps (pandas, and through them much more)
    from fluxora.paths import Home
    from fluxora.steps import RunResults


def run_summary(results: RunResults, home: Home, seconds: float, max_feature_age_s: float = 0.0) -> str:
    """`fluxora run`'s closing summary: data, features, the model and the gate, drift, accuracy, next
    steps; with `max_feature_age_s` (`serve.max_feature_age_s`), a line when the data end before it."""
    validated, features, train, drift = results.validate, results.features, results.train, results.monitor
    assert validated and features and train and drift, "the pipeline flow runs every step"
    m, model = train.metrics, train.model
    alias = "champion" if model.champion else "challenger (champion unchanged)"
    lines = [
        "",
        f"Fluxora run finished in {seconds:.0f} s",
        f"  data      {validated.rows} rows, {validated.series} series, {validated.start} .. {validated.end}",
        *_old_data_line(validated.end, max_feature_age_s),
        f"  features  {features.rows} origin states, online store materialized until {features.materialized_until}",
        f"  model     {model.name} version {model.version} -> {alias}",
    ]
    if not model.created:
        lines.append("            (already registered from the same data and config: no new version)")
    lines.append(f"            gate: {model.reason}")
    lines.append(
        f"            backtest MAE {m['mae']:.3f} vs seasonal naive daily {m['naive_daily_mae']:.3f} / "
        f"weekly {m['naive_weekly_mae']:.3f}  (skill {m['skill_mae']:+.1%})"
        if "skill_mae" in m
        else f"            backtest metrics: {', '.join(f'{k} {v:.4g}' for k, v in m.items() if '.' not in k)}"
    )
    if "mape" in m and "naive_daily_mape" in m:
        lines.append(
            f"            backtest MAPE {m['mape']:.2f}% vs naive daily {m['naive_daily_mape']:.2f}% / "
            f"weekly {m['naive_weekly_mape']:.2f}%"
        )
    lines.append(f"  drift     {_drift_line(drift.status, drift.drifted, drift.drift_share, drift.html)}")
    if drift.series_drifted or drift.new_series or drift.weather_drifted:
        lines.append(
            f"            load drift: {', '.join(drift.series_drifted) or 'none'}; "
            f"new: {', '.join(drift.new_series) or 'none'}; "
            f"weather (no retrain): {', '.join(drift.weather_drifted) or 'none'}"
        )
    acc = drift.accuracy
    lines.append(
        f"  accuracy  realized MAE {acc.mae:.3f} on {acc.points['matured']} matured points "
        f"({acc.points['pending']} pending)"
        if acc.status == "ok"
        else f"  accuracy  {acc.reason}"
    )
    if acc.by_weather:
        lines.append(f"            {weather_split_line(acc.by_weather)}")
    lines += [
        "",
        "Next:",
        f"  mlflow ui --backend-store-uri {home.mlflow_tracking_uri}   # browse runs and the registry",
        "  make serve                                                   # or: fluxora serve",
        "  fluxora status",
    ]
    return "\n".join(lines)


def _old_data_line(end: str | None, max_age_s: float) -> list[str]:
    """Why the service will call these features stale, when the data end longer ago than the limit."""
    from datetime import UTC, datetime

    try:
        last = datetime.fromisoformat(str(end))
    except ValueError:
        return []
    age = (datetime.now(UTC) - (last if last.tzinfo else last.replace(tzinfo=UTC))).total_seconds()
    if not max_age_s or age <= max_age_s:
        return []
    return [
        f"            the data end {age / 86_400:.0f} days ago (historical sample data?): the service flags its "
        "forecasts stale: true and readiness degraded (serve.max_feature_age_s); `fluxora status` says why"
    ]


def _drift_line(status: str, drifted: bool, share: float | None, html: str | None) -> str:
    if status != "ok" or share is None:
        return f"no drift result yet: too little history per series to judge (why: {html})"
    return f"{'DRIFT' if drifted else 'no drift'} (load drift in share {share:.2f} of series); report {html}"


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
    if acc.get("by_weather"):
        lines.append(f"              {weather_split_line(acc['by_weather'])}")
    if d.get("status") == "ok":
        verdict = "DECAYED" if d.get("decayed") else "holds"
        lines.append(
            f"              {verdict}: MAE {d['mae_ratio']:.2f}x {d.get('baseline')} (threshold {d.get('threshold')})"
        )
    return lines


def weather_split_line(by_weather: dict[str, dict[str, Any]]) -> str:
    """Realized accuracy of forecasts made with a weather forecast (every step) and without one."""
    parts = []
    for group, label in (("with_forecast", "with a weather forecast"), ("without_forecast", "without")):
        s = by_weather.get(group) or {}
        if s.get("status") != "ok":
            parts.append(f"{label}: insufficient data ({s.get('matured', 0)} matured points)")
            continue
        ratio = s.get("mae_ratio")
        vs = f", {ratio:.2f}x {s.get('baseline')}" if ratio is not None else ", no naive ratio"
        parts.append(f"{label}: MAE {_num(s.get('mae'))}{vs} on {s.get('matured')} points")
    return "; ".join(parts)


def _stale_flag(stale: dict[str, Any], sid: str) -> str:
    """`  STALE (12.3 days old)` for a series past `serve.max_feature_age_s`, REFUSED past the hard limit."""
    if sid not in (stale.get("stale") or ()):
        return ""
    word = "REFUSED" if sid in (stale.get("refused") or ()) else "STALE"
    return f"  {word} ({stale['age_s'][sid] / 86_400:.1f} days old)"


def _num(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def status_text(report: dict[str, Any]) -> str:
    """`fluxora status` as text."""
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
        stale = report.get("staleness") or {}
        lines.append("online store  latest feature timestamp per series:")
        width = max(20, *(len(sid) for sid in online))  # long series ids keep the column aligned
        lines += [f"  {sid:<{width}} {ts or 'missing'}{_stale_flag(stale, sid)}" for sid, ts in online.items()]
        if stale.get("note"):
            lines.append(f"  {stale['note']}")
    else:
        lines.append("online store  not materialized (run `fluxora run`)")
    vintages = report.get("weather_forecast")
    if vintages:
        lines.append("weather       latest issued forecast per series:")
        width = max(20, *(len(sid) for sid in vintages))
        lines += [f"  {sid:<{width}} {ts}" for sid, ts in vintages.items()]
    drift = report["drift"]
    if not drift:
        lines.append("drift         no report yet")
    elif drift.get("status") == "insufficient_data":
        lines.append(f"drift         insufficient data: {drift.get('reason')}")
    else:
        lines.append(f"drift         {_drift_line('ok', drift['drifted'], drift['drift_share'], drift['html_path'])}")
    if drift and "series_drifted" in drift:
        lines.append(
            f"              series drifted (load): {len(drift['series_drifted'])}; "
            f"insufficient data: {len(drift['series_insufficient'])}"
            + (f"; new: {len(drift['new_series'])}" if drift.get("new_series") is not None else "")
        )
        weather = (drift.get("weather") or {}).get("series_drifted")
        if weather:
            lines.append(f"              weather drift (reported, no retrain): {', '.join(weather)}")
    lines += _render_accuracy(report.get("accuracy"))
    if drift and (decision := drift.get("last_decision")):
        lines.append(f"retrain       {'triggered' if decision['retrain'] else 'no'}: {decision['reason']}")
    return "\n".join(lines)
