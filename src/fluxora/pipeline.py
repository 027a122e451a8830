"""The pipeline's steps as plain functions of (config, home).

The Prefect flow, the DVC stages and the CLI all call these, so each job is implemented once.
Each step reads its inputs from FLUXORA_HOME and writes its outputs there atomically.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.schema import SERIES_ID, TIMESTAMP
from fluxora.errors import InsufficientDataError
from fluxora.paths import Home

DRIFT_REPORT_NAME = "drift"


@dataclass(frozen=True)
class StepResult:
    """What a step did, small enough to pass between Prefect tasks and print."""

    step: str
    outputs: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest(cfg: FluxoraConfig, home: Home) -> StepResult:
    """Produce the raw canonical table from the configured source (synthetic or files)."""
    from fluxora.data.ingest import ingest as ingest_source
    from fluxora.paths import project_root

    summary = ingest_source(cfg.data, home.raw_data, project_root())
    return StepResult(
        "ingest",
        {"path": str(home.raw_data), "rows": summary.rows, "series": summary.series, "source": summary.source},
    )


def validate(cfg: FluxoraConfig, home: Home) -> StepResult:
    """Run the validation gate; write the report always, validated data only when the gate passes."""
    from fluxora.data.errors import GateFailedError
    from fluxora.data.gate import run_gate
    from fluxora.data.report import QUARANTINE_FILE, REPAIRS_FILE, write_report

    try:
        raw = io.read_parquet(home.raw_data, categories=[SERIES_ID])
        result = run_gate(raw, cfg.data.gate, cfg.data.freq, cfg.data.resolution)
    except GateFailedError as exc:
        home.validated_data.unlink(missing_ok=True)  # a stale copy must not feed the next steps
        write_report(exc.report, home.reports)
        raise
    io.write_parquet(result.quarantine, home.data / QUARANTINE_FILE)
    io.write_parquet(result.repairs, home.data / REPAIRS_FILE)
    json_path, _ = write_report(result.report, home.reports)
    io.write_parquet(result.data, home.validated_data)
    report = result.report
    return StepResult(
        "validate",
        {
            "path": str(home.validated_data),
            "rows": report["rows_written"],
            "series": report["series_out"],
            "start": report["start"],
            "end": report["end"],
            "rows_in": report["rows_in"],
            "rows_out": report["rows_out"],
            "rows_quarantined": report["rows_quarantined"],
            "rows_repaired": report["rows_repaired"],
            "report": str(json_path),
        },
    )


def features(cfg: FluxoraConfig, home: Home) -> StepResult:
    """Build every feature table, write the Feast offline sources, apply, materialize the latest state."""
    from fluxora.features import store as fs
    from fluxora.features.build import feature_tables

    tables = feature_tables(io.read_parquet(home.validated_data), cfg.features, _weather_forecasts(cfg))
    published = fs.publish(home, tables, cfg.infra)
    return StepResult(
        "features",
        {
            "path": str(fs.offline_path(home)),
            "rows": tables["origin_state"].num_rows,
            "tables": {view: table.num_rows for view, table in tables.items()},
            "applied": published.applied,
            "online_store": cfg.infra.online_store,
            "materialized_until": str(published.materialized_until),
        },
    )


def _weather_forecasts(cfg: FluxoraConfig) -> pd.DataFrame | None:
    """The configured temperature-forecast source (long format), or None: never faked from observations."""
    from fluxora.paths import project_root

    if not cfg.features.weather_forecast_path:
        return None
    path = Path(cfg.features.weather_forecast_path)
    return pd.read_parquet(path if path.is_absolute() else project_root() / path)


def train(cfg: FluxoraConfig, home: Home) -> StepResult:
    """Training set through Feast (point in time), fit, evaluate, log and register."""
    from fluxora import registry
    from fluxora.features import store as fs
    from fluxora.features.build import EVENT_TIMESTAMP
    from fluxora.models import train as training
    from fluxora.models.native import Contract

    data = io.read_parquet(home.validated_data)
    states = pd.read_parquet(fs.offline_path(home), columns=[SERIES_ID, EVENT_TIMESTAMP])
    entity_df = training.sample_origins(states, data, cfg.train.horizon, cfg.train.origin_stride_hours)
    feature_rows = fs.historical(fs.open_store(home), entity_df, cfg.features.feature_service)
    result = training.train(training.training_set(feature_rows, data, cfg), cfg)
    contract = Contract(
        model=cfg.model.name,
        horizon=cfg.train.horizon,
        load_history_hours=cfg.features.load_history_hours,
        temp_history_hours=cfg.features.temp_history_hours,
        heating_base_c=cfg.features.heating_base_c,
        cooling_base_c=cfg.features.cooling_base_c,
        feature_service=cfg.features.feature_service,
    )
    with tempfile.TemporaryDirectory(prefix="fluxora-model-") as tmp:
        model_dir = Path(tmp) / "model"
        result.model.save(model_dir)
        (model_dir / "contract.json").write_text(contract.to_json())
        registered = registry.log_and_register(home, cfg, result, model_dir, io.file_digest(home.validated_data))
    outputs = {
        "metrics": result.metrics,
        "model": registered.to_dict(),
        "train_rows": result.n_train_rows,
        "holdout_rows": result.n_holdout_rows,
        "holdout_start": str(result.holdout_start),
    }
    # DVC metrics are numbers only; the run reference for later steps goes in its own file.
    io.atomic_write_text(home.metrics_dir / "train_run.json", json.dumps(outputs, indent=2, default=str))
    io.atomic_write_text(
        home.metrics_dir / "train.json",
        json.dumps(
            result.metrics
            | {
                "model_version": int(registered.version),
                "champion": int(registered.champion),
                "train_rows": result.n_train_rows,
                "holdout_rows": result.n_holdout_rows,
            },
            indent=2,
        ),
    )
    return StepResult("train", outputs)


def monitor(cfg: FluxoraConfig, home: Home, run_id: str | None = None) -> StepResult:
    """Drift on the latest window against a season-matched reference, overall and per series, and
    the closed loop's retrain decision. Too little data is reported as such, never a crash."""
    from fluxora import registry
    from fluxora.monitoring import loop, windows
    from fluxora.monitoring.drift import drift_report
    from fluxora.monitoring.per_series import series_drift

    m = cfg.monitor
    data = io.read_parquet(home.validated_data)
    w = windows.select(data, m.current_days, m.reference, m.reference_weeks, m.reference_days)
    columns = [c for c in data.columns if c not in (SERIES_ID, TIMESTAMP) and pd.api.types.is_numeric_dtype(data[c])]
    try:
        result = drift_report(
            w.reference,
            w.current,
            columns,
            home.reports,
            name=DRIFT_REPORT_NAME,
            drift_share_threshold=m.drift_share_threshold,
            max_rows=m.max_rows,
        )
        drift: dict[str, Any] = {"status": "ok", **result.to_dict()}
        files = [result.html_path, result.json_path, result.evidently_json_path]
    except InsufficientDataError as exc:
        drift = {"status": "insufficient_data", "reason": str(exc), "drifted": False, "drift_share": None}
        io.atomic_write_text(home.reports / f"{DRIFT_REPORT_NAME}.json", json.dumps(drift, indent=2))
        files = [home.reports / f"{DRIFT_REPORT_NAME}.json"]
    per_series = series_drift(w.reference, w.current, columns, m.per_series_min_rows, m.per_series_threshold)
    series_path = io.atomic_write_text(
        home.reports / "drift_series.json",
        json.dumps({"windows": w.describe(), "series": per_series}, indent=2, default=str),
    )

    state = loop.load_state(home.reports)
    since = pd.Timestamp(state["data_end"]) if "data_end" in state else None
    new_rows = int((data[TIMESTAMP] > since).sum()) if since is not None else len(data)
    decision = loop.decide(drift, state, new_rows, datetime.now(UTC), m.retrain_cooldown_hours, m.retrain_min_new_rows)
    loop.log_decision(home.reports, decision)

    run_id = run_id or _last_train_run(home)
    if run_id:
        registry.log_artifacts(home, run_id, [*files, series_path], "reports")
    outputs = {
        "status": drift["status"],
        "drifted": drift["drifted"],
        "drift_share": drift["drift_share"],
        "html": str(home.reports / f"{DRIFT_REPORT_NAME}.html") if drift["status"] == "ok" else None,
        "json": str(home.reports / f"{DRIFT_REPORT_NAME}.json"),
        "series_json": str(series_path),
        "windows": w.describe(),
        "series_drifted": sorted(s for s, r in per_series.items() if r["drifted"]),
        "series_insufficient": sorted(s for s, r in per_series.items() if r["status"] != "ok"),
        "decision": decision.to_dict(),
        "data_end": str(w.end),
        "logged_to_run": run_id,
    }
    io.atomic_write_text(
        home.metrics_dir / "monitor.json",
        json.dumps(
            {
                "drifted": int(bool(drift["drifted"])),
                "drift_share": drift["drift_share"],
                "series_drifted": len(outputs["series_drifted"]),
                "retrain": int(decision.retrain),
            },
            indent=2,
        ),
    )
    return StepResult("monitor", outputs)


def _last_train_run(home: Home) -> str | None:
    path = home.metrics_dir / "train_run.json"
    if not path.is_file():
        return None
    return str(json.loads(path.read_text())["model"]["run_id"])
