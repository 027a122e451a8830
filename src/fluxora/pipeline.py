"""The pipeline's steps as plain functions of (config, home).

The Prefect flow, the DVC stages and the CLI all call these, so each job is implemented once.
Each step reads its inputs from FLUXORA_HOME and writes its outputs there atomically.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fluxora import stepcache
from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.schema import SERIES_ID, TIMESTAMP
from fluxora.errors import InsufficientDataError
from fluxora.fanout import SERIAL, FanOut
from fluxora.fanout import chunks as chunked
from fluxora.faults import failpoint
from fluxora.paths import Home

DRIFT_REPORT_NAME = "drift"
_log = logging.getLogger(__name__)


def bound(cfg: FluxoraConfig, home: Home) -> Home:
    """`home` talking to the configured MLflow tracking server, if the config names one."""
    return home.with_tracking(cfg.infra.mlflow_tracking_uri) if cfg.infra.mlflow_tracking_uri else home


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

    key = stepcache.Key(io.file_digest(home.raw_data), stepcache.config_hash(cfg.data))
    if (cached := stepcache.lookup(home, "validate", key)) is not None:
        return StepResult("validate", cached | {"cached": True})
    try:
        raw = io.read_parquet(home.raw_data, categories=[SERIES_ID])
        result = run_gate(raw, cfg.data.gate, cfg.data.freq, cfg.data.resolution)
    except GateFailedError as exc:
        home.validated_data.unlink(missing_ok=True)  # a stale copy must not feed the next steps
        write_report(exc.report, home.reports)
        raise
    io.write_parquet(result.quarantine, home.data / QUARANTINE_FILE)
    io.write_parquet(result.repairs, home.data / REPAIRS_FILE)
    json_path, text_path = write_report(result.report, home.reports)
    io.write_parquet(result.data, home.validated_data)
    report = result.report
    outputs = {
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
    }
    files = [home.validated_data, home.data / QUARANTINE_FILE, home.data / REPAIRS_FILE, json_path, text_path]
    stepcache.record(home, "validate", key, outputs, files)
    return StepResult("validate", outputs)


def features(cfg: FluxoraConfig, home: Home) -> StepResult:
    """Build every feature table, write the Feast offline sources, apply, materialize the latest state."""
    from fluxora.features import store as fs
    from fluxora.features.build import feature_batches
    from fluxora.features.weather import forecast_states

    key = stepcache.Key(io.file_digest(home.validated_data), stepcache.config_hash(cfg.features, _weather_version(cfg)))
    if (cached := stepcache.lookup(home, "features", key)) is not None:
        # The offline tables are current; the online store and registry may not be (a Redis
        # restart, another infra): apply and load the latest state again, which is cheap.
        published = fs.republish(home, list(cached["tables"]), cfg.infra)
        return StepResult("features", cached | _published(cfg, published) | {"cached": True})
    data = io.read_parquet(home.validated_data)
    forecasts = {"weather_forecast": forecast_states(_weather_forecasts(cfg), cfg.features.weather_forecast_hours)}
    published, rows = fs.publish_batches(home, feature_batches(data, cfg.features), cfg.infra, forecasts)
    if "origin_state" not in rows:
        raise InsufficientDataError(
            f"no series has the {max(cfg.features.load_history_hours, cfg.features.temp_history_hours, 24)} "
            "hours of history needed for features"
        )
    outputs = {"path": str(fs.offline_path(home)), "rows": rows["origin_state"], "tables": rows}
    stepcache.record(home, "features", key, outputs, [fs.table_path(home, view) for view in rows])
    return StepResult("features", outputs | _published(cfg, published))


def _published(cfg: FluxoraConfig, published: Any) -> dict[str, Any]:
    return {
        "applied": published.applied,
        "online_store": cfg.infra.online_store,
        "materialized_until": str(published.materialized_until),
    }


def _weather_forecast_file(cfg: FluxoraConfig) -> Path | None:
    from fluxora.paths import project_root

    if not cfg.features.weather_forecast_path:
        return None
    path = Path(cfg.features.weather_forecast_path)
    return path if path.is_absolute() else project_root() / path


def _weather_version(cfg: FluxoraConfig) -> str:
    """The weather forecast file's digest, when one is configured (its contents feed the features)."""
    path = _weather_forecast_file(cfg)
    return io.file_digest(path) if path else ""


def _weather_forecasts(cfg: FluxoraConfig) -> pd.DataFrame | None:
    """The configured temperature-forecast source (long format), or None: never faked from observations."""
    path = _weather_forecast_file(cfg)
    return pd.read_parquet(path) if path else None


def train(
    cfg: FluxoraConfig, home: Home, progress: Callable[[str], None] | None = None, fan_out: FanOut = SERIAL
) -> StepResult:
    """Backtest the candidates against seasonal naive and the current champion on the same
    windows, fit the best on the training set read through Feast (point in time), register it
    as `challenger` and let the gate decide on `champion`. Idempotent: the same data version
    and config hash reuse the registered version. Per-series backtest work goes through `fan_out`."""
    from fluxora import registry
    from fluxora.models import backtest as bt
    from fluxora.models.panel import Panel

    say = progress or _log.info
    home = bound(cfg, home)
    data_version = io.file_digest(home.validated_data)
    name = cfg.train.registered_model_name
    existing = registry.find_version(home, name, data_version, cfg.fingerprint())
    if existing is not None:
        say(f"train: version {existing.version} was already registered from this data and config; nothing to do")
        return _train_outputs(home, existing, registry.run_metrics(home, existing.run_id), None)

    panel = Panel.from_frame(io.read_parquet(home.validated_data))
    spec = bt.resolve(cfg, panel, weather=cfg.train.weather, horizon=cfg.train.horizon)
    champion, note = _champion_for(home, cfg, spec)
    fixed = {f"champion_v{champion[0]}": champion[1]} if champion else {}
    result = bt.run(
        panel, cfg, _candidates(cfg, include_baselines=True), spec, fixed=fixed, progress=say, fan_out=fan_out
    )
    board = bt.leaderboard(
        result, cfg.train.promotion_metric, fan_out=fan_out, series_per_task=cfg.infra.series_per_task
    )
    winner, metrics, decision = _select(cfg, board, note)
    say(f"train: {winner} wins the backtest; gate: {decision.reason}")
    failpoint("train:backtested")

    model = _fit_final(cfg, home, panel, winner)
    failpoint("train:fitted")
    with tempfile.TemporaryDirectory(prefix="fluxora-model-") as tmp:
        model_dir = model.save(Path(tmp) / "model")
        artifacts = [io.atomic_write_text(Path(tmp) / "leaderboard.json", json.dumps(board, indent=2, default=str))]
        if cfg.backtest.plots:
            from fluxora.models.plots import backtest_plots

            artifacts += backtest_plots(result, board, Path(tmp) / "plots", cfg.backtest.plot_series)
        registered = registry.log_and_register(home, cfg, model_dir, data_version, metrics, decision, artifacts)
    if not registered.champion:
        _log.warning("version %s stays challenger: %s", registered.version, decision.reason)
    return _train_outputs(home, registered, metrics, board)


def _candidates(cfg: FluxoraConfig, include_baselines: bool) -> list[str]:
    from fluxora.models.forecasters import BASELINES

    names = list(cfg.model.candidates) if cfg.model.name == "auto" else [cfg.model.name]
    return [*BASELINES, *names] if include_baselines else names


def _champion_for(home: Home, cfg: FluxoraConfig, spec: Any) -> tuple[tuple[str, Any] | None, str]:
    """The current champion as a NativeForecaster if it can be scored on these windows,
    else None and (when one exists) why not."""
    from fluxora import registry
    from fluxora.errors import RegistryError
    from fluxora.models.native import SERIES_KEY, TARGET_TEMPERATURE, NativeForecaster, find_model_dir

    if not home.has_registry:
        return None, ""
    try:
        version, local = registry.download_champion(
            home.mlflow_tracking_uri, cfg.train.registered_model_name, home.root / "cache" / "models"
        )
    except RegistryError:
        return None, ""
    try:
        native = NativeForecaster.load(find_model_dir(local))
    except (ValueError, FileNotFoundError, KeyError) as exc:
        return None, f"champion v{version} cannot be loaded by this code ({exc})"
    c = native.contract
    available = {"load_history", "temp_history", SERIES_KEY} | (
        {TARGET_TEMPERATURE} if spec.weather != "persistence" else set()
    )
    if c.horizon < spec.horizon or not set(c.state_features) <= available:
        return None, f"champion v{version} cannot forecast these windows (horizon {c.horizon}, {c.state_features})"
    return (version, native), ""


def _select(cfg: FluxoraConfig, board: dict[str, Any], champion_note: str) -> tuple[str, dict[str, float], Any]:
    from fluxora.models import backtest as bt
    from fluxora.models.forecasters import BASELINES
    from fluxora.models.selection import gate

    key = cfg.train.promotion_metric
    by_name = {e["model"]: e["overall"] for e in board["models"]}
    candidates = _candidates(cfg, include_baselines=False)
    winner = min(candidates, key=lambda n: by_name[n][key])
    _, naive = bt.best_baseline(board, BASELINES)
    champ = next((e["overall"][key] for e in board["models"] if e["model"].startswith("champion_v")), None)
    decision = gate(key, by_name[winner][key], naive, champ, cfg.train.promotion_margin, champion_note)
    metrics = dict(by_name[winner])
    for label, model in (("naive_daily", BASELINES[0]), ("naive_weekly", BASELINES[1])):
        metrics |= {f"{label}_{k}": v for k, v in by_name[model].items()}
    metrics[f"baseline_{key}"] = naive
    metrics[f"skill_{key}"] = 1.0 - by_name[winner][key] / naive
    if champ is not None:
        metrics[f"champion_{key}"] = champ
    for name in candidates:
        metrics |= {f"candidate.{name}.{k}": v for k, v in by_name[name].items()}
    return winner, metrics, decision


def _fit_final(cfg: FluxoraConfig, home: Home, panel: Any, winner: str) -> Any:
    """The production model: the winner refit on every origin, read through Feast."""
    from fluxora.features import store as fs
    from fluxora.features.build import EVENT_TIMESTAMP
    from fluxora.models.forecasters import make_forecaster
    from fluxora.models.panel import batch_from_features, concat_batches, sample_origins

    fc, h = cfg.features, cfg.train.horizon
    states = pd.read_parquet(fs.offline_path(home), columns=[SERIES_ID, EVENT_TIMESTAMP])
    origins = panel.training_origins(h, cfg.train.origin_stride_hours, fc.load_history_hours, fc.temp_history_hours)
    origins = sample_origins(origins, cfg.train.max_origins, cfg.backtest.seed)
    wanted = pd.DataFrame(
        [(sid, t) for sid, stamps in origins.items() for t in stamps], columns=[SERIES_ID, EVENT_TIMESTAMP]
    )
    wanted[EVENT_TIMESTAMP] = pd.to_datetime(wanted[EVENT_TIMESTAMP]).dt.tz_localize("UTC")
    entity_df = wanted.merge(states, on=[SERIES_ID, EVENT_TIMESTAMP], how="inner")
    if entity_df.empty:
        raise InsufficientDataError("the offline feature store holds none of the training origins; run features")
    store = fs.open_store(home)
    # Series by series (batches of `features.series_per_batch`): memory holds one chunk's arrays
    # as Python objects at a time, and each chunk reads only its series' row groups.
    ids = entity_df[SERIES_ID].astype(str)
    chunks = [
        batch_from_features(
            fs.historical(store, entity_df[ids.isin(group)].reset_index(drop=True), fc.feature_service),
            panel,
            h,
            fc.load_history_hours,
            fc.temp_history_hours,
        )
        for group in chunked(sorted(ids.unique()), fc.series_per_batch)
    ]
    batch = concat_batches(chunks)
    batch = batch.with_weather(cfg.train.weather, cfg.backtest.weather_noise_c, cfg.backtest.seed)
    return make_forecaster(winner, cfg, h, cfg.train.weather).fit(batch)


def _train_outputs(home: Home, registered: Any, metrics: dict[str, float], board: dict[str, Any] | None) -> StepResult:
    outputs = {
        "metrics": metrics,
        "model": registered.to_dict(),
        "leaderboard": None if board is None else [(e["model"], e["overall"]) for e in board["models"]],
    }
    # DVC metrics are numbers only; the run reference for later steps goes in its own file.
    io.atomic_write_text(home.metrics_dir / "train_run.json", json.dumps(outputs, indent=2, default=str))
    flat = {k: v for k, v in metrics.items() if "." not in k}
    io.atomic_write_text(
        home.metrics_dir / "train.json",
        json.dumps(
            flat | {"model_version": int(registered.version), "champion": int(registered.champion)},
            indent=2,
        ),
    )
    return StepResult("train", outputs)


def backtest(
    cfg: FluxoraConfig,
    home: Home,
    output: Path | None = None,
    progress: Callable[[str], None] | None = None,
    fan_out: FanOut = SERIAL,
) -> StepResult:
    """Backtest `backtest.models` and both seasonal naive baselines on validated data; write
    the leaderboard JSON, log it with plots and metrics to an MLflow run."""
    from fluxora import registry
    from fluxora.models import backtest as bt
    from fluxora.models.forecasters import BASELINES
    from fluxora.models.panel import Panel

    say = progress or _log.info
    home = bound(cfg, home)
    panel = Panel.from_frame(io.read_parquet(home.validated_data))
    spec = bt.resolve(cfg, panel)
    result = bt.run(panel, cfg, [*BASELINES, *cfg.backtest.models], spec, progress=say, fan_out=fan_out)
    board = bt.leaderboard(
        result, cfg.train.promotion_metric, fan_out=fan_out, series_per_task=cfg.infra.series_per_task
    )
    board = {"data_version": io.file_digest(home.validated_data), "config_hash": cfg.fingerprint()} | board
    target = output or home.reports / "leaderboard.json"
    io.atomic_write_text(target, json.dumps(board, indent=2, default=str))
    run_id = registry.log_backtest(home, cfg, board, _plots(cfg, result, board, home), target)
    return StepResult("backtest", {"leaderboard": str(target), "table": bt.render(board), "run_id": run_id})


def _plots(cfg: FluxoraConfig, result: Any, board: dict[str, Any], home: Home) -> list[Path]:
    if not cfg.backtest.plots:
        return []
    from fluxora.models.plots import backtest_plots

    return backtest_plots(result, board, home.reports / "backtest", cfg.backtest.plot_series)


def monitor(cfg: FluxoraConfig, home: Home, run_id: str | None = None) -> StepResult:
    """Drift on the latest window against a season-matched reference, overall and per series, the
    realized accuracy of served forecasts, and the closed loop's retrain decision. Too little data
    is reported as such, never a crash."""
    from fluxora import registry
    from fluxora.monitoring import loop, windows
    from fluxora.monitoring.drift import drift_report
    from fluxora.monitoring.per_series import series_drift

    m = cfg.monitor
    home = bound(cfg, home)
    data = io.read_parquet(home.validated_data)
    # First, before anything is written: an unreachable forecast-log database fails the step whole.
    forecast_log, log_note, log_window = _forecast_log(cfg, home, data)
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

    accuracy = _realized_accuracy(cfg, home, forecast_log, data, log_note, log_window)
    files += [Path(accuracy["html_path"]), Path(accuracy["json_path"])]

    state = loop.load_state(home.reports)
    since = pd.Timestamp(state["data_end"]) if "data_end" in state else None
    new_rows = int((data[TIMESTAMP] > since).sum()) if since is not None else len(data)
    decision = loop.decide(
        drift,
        state,
        new_rows,
        datetime.now(UTC),
        m.retrain_cooldown_hours,
        m.retrain_min_new_rows,
        accuracy=accuracy["decay"],
    )
    # The registry first: if it is down the step fails (and is retried) before a decision is
    # recorded, so a failed run leaves complete report files and nothing else behind.
    run_id = run_id or _last_train_run(home)
    if run_id:
        registry.log_artifacts(home, run_id, [*files, series_path], "reports")
    loop.log_decision(home.reports, decision)
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
        "accuracy": _accuracy_brief(accuracy),
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
                "realized_mae": accuracy["overall"]["mae"],
                "realized_mape": accuracy["overall"]["mape"],
                "realized_coverage": accuracy["overall"]["coverage"],
                "realized_mae_ratio": accuracy["decay"]["mae_ratio"],
                "forecast_points_matured": accuracy["points"]["matured"],
                "forecast_points_pending": accuracy["points"]["pending"],
            },
            indent=2,
        ),
    )
    return StepResult("monitor", outputs)


def _forecast_log(
    cfg: FluxoraConfig, home: Home, data: pd.DataFrame
) -> tuple[pd.DataFrame, str | None, dict[str, Any]]:
    """The service's forecast log for the accuracy window (forecasts served after the latest
    actual minus `monitor.accuracy_days`)."""
    from fluxora.monitoring import accuracy

    accuracy.check_interval(cfg.monitor.accuracy_interval)  # a config error, before anything is written
    stamps = pd.to_datetime(data[TIMESTAMP], utc=True) if len(data) else pd.Series(dtype="datetime64[ns, UTC]")
    end = stamps.max() if len(stamps) else pd.Timestamp.now(tz="UTC")
    after = (end - pd.Timedelta(days=cfg.monitor.accuracy_days)).to_pydatetime()
    url = cfg.infra.database_url or accuracy.default_log_url(home.root)
    log, note = accuracy.load_log(url, served_after=after)
    return log, note, {"served_after": after.isoformat(), "actuals_end": str(end) if len(stamps) else None}


def _realized_accuracy(
    cfg: FluxoraConfig,
    home: Home,
    forecast_log: pd.DataFrame,
    data: pd.DataFrame,
    note: str | None,
    window: dict[str, Any],
) -> dict[str, Any]:
    from fluxora.monitoring.accuracy import accuracy_report

    m = cfg.monitor
    return accuracy_report(
        forecast_log,
        data,
        home.reports,
        min_points=m.accuracy_min_points,
        interval=m.accuracy_interval,
        mae_ratio_threshold=m.accuracy_mae_ratio_threshold,
        note=note,
        window=window,
    )


def _accuracy_brief(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("status", "reason", "points", "forecasts", "json_path", "html_path")
    return {k: report[k] for k in keep} | {
        "mae": report["overall"]["mae"],
        "mape": report["overall"]["mape"],
        "coverage": report["overall"]["coverage"],
        "decay": report["decay"],
    }


def _last_train_run(home: Home) -> str | None:
    path = home.metrics_dir / "train_run.json"
    if not path.is_file():
        return None
    return str(json.loads(path.read_text())["model"]["run_id"])
