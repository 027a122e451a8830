"""The pipeline's steps as plain functions of (config, home).

The Prefect flow, the DVC stages and the CLI all call these, so each job is implemented once.
Each step reads its inputs from FLUXORA_HOME and writes its outputs there atomically.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.errors import ConfigError, InsufficientDataError
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
    """Produce raw canonical data from the configured source."""
    from fluxora.data.synthetic import generate

    if cfg.data.source != "synthetic":
        raise ConfigError(f"invalid configuration: data.source: unknown source {cfg.data.source!r} (known: synthetic)")
    df = generate(cfg.data)
    io.write_parquet(df, home.raw_data)
    return StepResult("ingest", {"path": str(home.raw_data), "rows": len(df), "series": int(df[SERIES_ID].nunique())})


def validate(cfg: FluxoraConfig, home: Home) -> StepResult:
    """Validate raw data; on success write the validated copy, on failure write nothing."""
    from fluxora.data.validate import validate as check

    df, summary = check(io.read_parquet(home.raw_data), cfg.data.freq)
    io.write_parquet(df, home.validated_data)
    return StepResult(
        "validate",
        {
            "path": str(home.validated_data),
            "rows": summary.rows,
            "series": summary.series,
            "start": str(summary.start),
            "end": str(summary.end),
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
    """Evidently drift: the reference window just before the latest `current_days` against them."""
    from fluxora import registry
    from fluxora.monitoring.drift import drift_report

    data = io.read_parquet(home.validated_data)
    end = data[TIMESTAMP].max()
    cur_start = end - pd.Timedelta(days=cfg.monitor.current_days)
    ref_start = cur_start - pd.Timedelta(days=cfg.monitor.reference_days)
    current = data[data[TIMESTAMP] > cur_start]
    reference = data[(data[TIMESTAMP] > ref_start) & (data[TIMESTAMP] <= cur_start)]
    if current.empty or reference.empty:
        raise InsufficientDataError("not enough data for the drift windows; lower monitor.reference_days/current_days")
    drift = drift_report(
        reference,
        current,
        [LOAD, TEMPERATURE],
        home.reports,
        name=DRIFT_REPORT_NAME,
        drift_share_threshold=cfg.monitor.drift_share_threshold,
        max_rows=cfg.monitor.max_rows,
    )
    run_id = run_id or _last_train_run(home)
    if run_id:
        registry.log_artifacts(home, run_id, [drift.html_path, drift.json_path, drift.evidently_json_path], "reports")
    outputs = {
        "drifted": drift.drifted,
        "drift_share": drift.drift_share,
        "html": str(drift.html_path),
        "json": str(drift.json_path),
        "reference_start": str(ref_start),
        "current_start": str(cur_start),
        "end": str(end),
        "logged_to_run": run_id,
    }
    io.atomic_write_text(
        home.metrics_dir / "monitor.json",
        json.dumps(
            {"drifted": int(drift.drifted), "drift_share": drift.drift_share, "n_drifted": drift.n_drifted}, indent=2
        ),
    )
    return StepResult("monitor", outputs)


def _last_train_run(home: Home) -> str | None:
    path = home.metrics_dir / "train_run.json"
    if not path.is_file():
        return None
    return str(json.loads(path.read_text())["model"]["run_id"])
