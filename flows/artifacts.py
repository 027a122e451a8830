"""Prefect artifacts of the flow runs: what a Prefect user reads on a run's page (and, by key, on
the Artifacts page across runs): the data that came in, the backtest leaderboard, the promotion
gate's verdict, monitoring's drift and accuracy summary, and where the reports are.

Made from the steps' typed results; `*_markdown` and `leaderboard_rows` are plain functions
(tested on their own), `publish_*` hand them to Prefect inside the running flow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fluxora import steps
from fluxora.config import FluxoraConfig, redact
from fluxora.paths import Home

# Artifact keys (lowercase letters, digits and dashes): one history per key in Prefect's UI.
DATA_KEY = "fluxora-data"
LEADERBOARD_KEY = "fluxora-leaderboard"
GATE_KEY = "fluxora-promotion-gate"
MONITOR_KEY = "fluxora-monitoring"
SKIPPED_KEY = "fluxora-skipped"
WEATHER_KEY = "fluxora-weather-forecasts"
_PERCENT = ("mape", "smape")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _num(value: Any, decimals: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.{decimals}f}" if isinstance(value, float) else str(value)


def _link(path: str | Path | None) -> str:
    if not path:
        return "-"
    p = Path(path)
    return f"[{p.name}]({p.resolve().as_uri()})" + ("" if p.exists() else " (missing)")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def data_markdown(validated: steps.ValidateResult, features: steps.FeaturesResult | None) -> str:
    rows: list[list[Any]] = [
        ["rows in", validated.rows_in],
        ["rows written", validated.rows],
        ["rows quarantined", validated.rows_quarantined],
        ["rows repaired", validated.rows_repaired],
        ["series", validated.series],
        ["period (UTC)", f"{validated.start} to {validated.end}"],
    ]
    if features is not None:
        rows += [["origin states", features.rows], ["online store", features.online_store]]
        rows += [["materialized until", features.materialized_until]]
    cached = " (validation reused: same data and gate config)" if validated.cached else ""
    report = Path(validated.report)
    return "\n\n".join(
        [
            f"## Data: {validated.series} series, {validated.rows} rows{cached}",
            _table(["", "value"], rows),
            f"Validation report: {_link(report)}, {_link(report.with_suffix('.txt'))}",
        ]
    )


def leaderboard_rows(trained: steps.TrainResult) -> list[dict[str, Any]]:
    """One row per model of the backtest, best first, figures rounded for reading."""
    rows = []
    for rank, (model, overall) in enumerate(trained.leaderboard or [], 1):
        row: dict[str, Any] = {"rank": rank, "model": model}
        for k, v in overall.items():
            row[f"{k} %" if k in _PERCENT else k] = None if v != v else round(v, 2 if k in _PERCENT else 3)
        rows.append(row)
    return rows


def gate_markdown(trained: steps.TrainResult, cfg: FluxoraConfig, home: Home) -> str:
    m, metric = trained.model, cfg.train.promotion_metric
    if trained.leaderboard is None:
        verdict = f"version {m.version} reused (already registered from this data and config; nothing trained)"
    elif m.champion:
        verdict = f"version {m.version} is **champion**"
    else:
        verdict = f"version {m.version} stays **challenger**"
    figures = trained.metrics
    rows = [
        [f"{metric} (backtest)", _num(figures.get(metric))],
        [f"best seasonal naive {metric}", _num(figures.get(f"baseline_{metric}"))],
        [f"champion {metric}", _num(figures.get(f"champion_{metric}"))],
        [f"skill vs naive (1 - {metric} / naive)", _num(figures.get(f"skill_{metric}"))],
        ["promotion margin", f"{cfg.train.promotion_margin:.0%}"],
    ]
    where = redact(home.mlflow_tracking_uri)
    return "\n\n".join(
        [
            f"## Promotion gate: {verdict}",
            f"**Reason:** {_cell(m.reason)}",
            _table(["", "value"], rows),
            f"Model `models:/{m.name}/{m.version}`, MLflow run `{m.run_id}` on `{where}`.",
            "DVC plot data: "
            + ", ".join(_link(home.plots_dir / n) for n in ("forecast_vs_actual.csv", "error_by_horizon.csv")),
        ]
    )


def _names(ids: list[str], most: int = 10) -> str:
    shown = ", ".join(ids[:most]) + (f" and {len(ids) - most} more" if len(ids) > most else "")
    return f"{len(ids)}" + (f" ({shown})" if ids else "")


def monitoring_markdown(monitored: steps.MonitorResult, retrain_run: str | None = None) -> str:
    acc, d = monitored.accuracy, monitored.decision
    if monitored.status != "ok":
        drift = "not judged (too little history)"
    else:
        drift = "drift" if monitored.drifted else "no drift"
    drift_rows = [
        ["status", drift],
        ["share of judged series drifted", _num(monitored.drift_share)],
        ["series drifted (load)", _names(monitored.series_drifted)],
        ["series with too little history", _names(monitored.series_insufficient)],
        ["new series", _names(monitored.new_series)],
        ["weather drifted (reported only)", _names(monitored.weather_drifted)],
        ["window", f"{monitored.windows.get('current_start')} to {monitored.windows.get('end')}"],
    ]
    acc_rows = [
        ["status", acc.status + (f": {acc.reason}" if acc.reason else "")],
        ["MAE", _num(acc.mae)],
        ["MAPE %", _num(acc.mape, 2)],
        ["interval coverage", _num(acc.coverage)],
        ["MAE / seasonal naive MAE", _num(acc.decay.get("mae_ratio"))],
        ["residual drift (MAE vs naive, per series)", _names(monitored.residual_drifted)],
        [
            "points matured / pending / missing",
            f"{acc.points['matured']} / {acc.points['pending']} / {acc.points['missing']}",
        ],
    ]
    retrain = "yes" if d.retrain else "no"
    if retrain_run:
        retrain += f" (training flow run `{retrain_run}` triggered)"
    return "\n\n".join(
        [
            f"## Monitoring: {drift}; realized accuracy {acc.status}; retrain {retrain}",
            f"**Decision:** {_cell(d.reason)}",
            "### Drift (each series against its own history)",
            _table(["", "value"], drift_rows),
            "### Realized accuracy (served forecasts vs actuals)",
            _table(["", "value"], acc_rows),
            "Reports: " + ", ".join(_link(p) for p in (monitored.html, monitored.json, acc.html_path, acc.json_path)),
            *(
                [
                    f"History: snapshot `{monitored.history['snapshot_id']}` in {_link(monitored.history['workspace'])}"
                    " (`fluxora monitor ui` shows the runs over time)"
                ]
                if monitored.history
                else []
            ),
        ]
    )


def publish_data(validated: steps.ValidateResult, features: steps.FeaturesResult | None) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        data_markdown(validated, features), key=DATA_KEY, description="Validated data and features"
    )


def publish_training(trained: steps.TrainResult, cfg: FluxoraConfig, home: Home) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    if trained.leaderboard is not None:
        h = cfg.train.horizon
        spec = f"{cfg.backtest.windows} windows, horizon {f'{h} steps' if isinstance(h, int) else h}"
        create_table_artifact(
            leaderboard_rows(trained),
            key=LEADERBOARD_KEY,
            description=f"Backtest leaderboard ({spec}; ranked by {cfg.train.promotion_metric})",
        )
    create_markdown_artifact(
        gate_markdown(trained, cfg, home), key=GATE_KEY, description="The promotion gate's verdict"
    )


def publish_monitoring(monitored: steps.MonitorResult, retrain_run: str | None = None) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        monitoring_markdown(monitored, retrain_run), key=MONITOR_KEY, description="Drift and realized accuracy"
    )


def publish_skipped(reason: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(f"## Skipped\n\n{_cell(reason)}", key=SKIPPED_KEY, description="Why this run did nothing")


def weather_markdown(result: steps.WeatherResult) -> str:
    """The weather run: rows kept and dropped by reason, the data version, the newest issue time
    per series."""
    if not result.configured:
        return f"## Weather forecasts\n\n{_cell(result.message)}"
    rows: list[list[Any]] = [["rows read", result.rows_in], ["kept", result.rows_out]]
    rows += [[f"dropped: {why}", n] for why, n in result.dropped.items()]
    rows += [
        ["gaps (target hours missing inside runs)", result.gaps],
        ["vintages stored", f"{result.vintages} runs, {result.rows_stored} rows"],
        ["data version", f"{result.data_version} ({'new' if result.changed else 'unchanged'})"],
        ["online store", result.online_store],
        ["report", _link(result.report)],
    ]
    latest = _table(["series", "latest issued_at (UTC)"], [[s, t] for s, t in result.latest_issued.items()])
    return f"## Weather forecasts\n\n{_table(['', 'value'], rows)}\n\n### Latest vintage per series\n\n{latest}"


def publish_weather(result: steps.WeatherResult) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        weather_markdown(result), key=WEATHER_KEY, description="Weather-forecast vintages kept and dropped"
    )
