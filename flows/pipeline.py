"""Prefect flows: the whole pipeline, and the scheduled parts of it (ingest, train, monitor, weather).

Wiring only: each task is one call to a `fluxora.steps` function. I/O tasks retry with
exponential backoff, and only on errors that may pass (a network or registry hiccup); a data
or configuration error fails at once, since running it again cannot fix it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from prefect import Task, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows import artifacts
from flows.fanout import fan_out
from flows.parameters import Horizon, ModelName, SeriesIds, as_overrides
from fluxora import steps
from fluxora.config import FluxoraConfig, compose
from fluxora.errors import ConfigError, DataValidationError, InsufficientDataError
from fluxora.faults import failpoint
from fluxora.paths import Home
from fluxora.runtime import prepare, release_memory
from fluxora.steps import RunResults

_PERMANENT = (ConfigError, DataValidationError, InsufficientDataError, ValueError, TypeError, KeyError)


def _step(name: str):  # type: ignore[no-untyped-def]
    return task(name=name, cache_policy=NO_CACHE)


@_step("ingest")
def ingest(cfg: FluxoraConfig, home: Home) -> steps.IngestResult:
    return steps.ingest(cfg, home)


@_step("validate")
def validate(cfg: FluxoraConfig, home: Home) -> steps.ValidateResult:
    return steps.validate(cfg, home)


@_step("features")
def features(cfg: FluxoraConfig, home: Home) -> steps.FeaturesResult:
    return steps.features(cfg, home)


@_step("train")
def train(cfg: FluxoraConfig, home: Home) -> steps.TrainResult:
    with fan_out(cfg.infra) as per_series:  # infra.task_runner=dask: backtest units on Dask
        return steps.train(cfg, home, progress=get_run_logger().info, fan_out=per_series)


@_step("monitor")
def monitor(cfg: FluxoraConfig, home: Home, run_id: str | None = None) -> steps.MonitorResult:
    return steps.monitor(cfg, home, run_id)


@_step("weather")
def weather(cfg: FluxoraConfig, home: Home) -> steps.WeatherResult:
    return steps.weather(cfg, home)


def is_transient(_task: Task[Any, Any], _run: Any, state: Any) -> bool:
    """Retry condition: only errors that a later attempt could get past."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and not isinstance(exc, _PERMANENT)


def _io(step: Task[Any, Any], cfg: FluxoraConfig) -> Task[Any, Any]:
    return step.with_options(
        retries=cfg.deploy.io_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=cfg.deploy.io_retry_backoff_s),
        retry_condition_fn=is_transient,
    )


def _setup(overrides: list[str] | None, config: FluxoraConfig | None) -> tuple[FluxoraConfig, Home]:
    """The run's configuration (as the caller composed it, else composed here from `overrides`:
    a deployment's run) and its home."""
    cfg = config if config is not None else compose(overrides or [])
    home = prepare(cfg=cfg)
    get_run_logger().info("FLUXORA_HOME=%s config=%s overrides=%s", home.root, cfg.fingerprint(), overrides or [])
    return cfg, home


def _record(results: list[steps.Result], result: Any) -> Any:
    """Log a step's outcome and keep it (`result` is a step's result; Prefect's task call typing
    cannot say so)."""
    get_run_logger().info("%s: %s", result.step, _brief(result))
    results.append(result)
    release_memory()  # the step's tables are gone: the next step's peak does not stack on this one's
    failpoint(f"after:{result.step}")
    return result


def _run_ingest(cfg: FluxoraConfig, home: Home, results: list[steps.Result]) -> None:
    _record(results, _io(ingest, cfg)(cfg, home))
    validated = _record(results, validate(cfg, home))
    artifacts.publish_data(validated, _record(results, _io(features, cfg)(cfg, home)))


def _run_train(cfg: FluxoraConfig, home: Home, results: list[steps.Result]) -> steps.TrainResult:
    trained: steps.TrainResult = _record(results, train(cfg, home))
    artifacts.publish_training(trained, cfg, home)
    return trained


def _skip(reason: str) -> RunResults:
    artifacts.publish_skipped(reason)
    return RunResults(skipped=reason)


# `config`: the configuration the caller already composed (`fluxora run` passes it, so a process
# composes it once); deployments pass only `overrides`.


@flow(name="fluxora-pipeline")
def pipeline_flow(overrides: list[str] | None = None, config: FluxoraConfig | None = None) -> RunResults:
    """Run the whole pipeline with Hydra overrides (e.g. ["train.horizon=48"])."""
    cfg, home = _setup(overrides, config)
    results: list[steps.Result] = []
    _run_ingest(cfg, home, results)
    trained = _run_train(cfg, home, results)
    artifacts.publish_monitoring(_record(results, _io(monitor, cfg)(cfg, home, trained.model.run_id)))
    return RunResults.of(results)


# The deployed flows take typed parameters for what users change per run (`flows.parameters`);
# each becomes a Hydra override after the free `overrides`, so conf/ stays the one source.


@flow(name="fluxora-ingest")
def ingest_flow(
    data_path: str | None = None, series: SeriesIds | None = None, overrides: list[str] | None = None
) -> RunResults:
    """Scheduled: bring in new data, validate it, refresh features and the online store.

    Args:
        data_path: A CSV or Parquet file, folder or glob under data.roots (project-relative);
            empty: as configured (the synthetic sample by default).
        series: Run on these series ids only; empty: every series of the source.
        overrides: More Hydra overrides, e.g. ["data.timezone=Europe/Berlin"].
    """
    if reason := superseded():
        return _skip(reason)
    cfg, home = _setup(as_overrides(overrides, data_path=data_path, series=series), None)
    results: list[steps.Result] = []
    _run_ingest(cfg, home, results)
    return RunResults.of(results)


@flow(name="fluxora-train")
def train_flow(
    model: ModelName | None = None, horizon: Horizon | None = None, overrides: list[str] | None = None
) -> RunResults:
    """Scheduled or triggered: train on the current features and register the result.

    Args:
        model: The forecaster to train (conf/model/NAME.yaml; auto backtests model.candidates);
            empty: as configured.
        horizon: How far ahead the model forecasts (train.horizon): steps of the data's resolution
            (hours at hourly data) or a duration such as 24h or 90min; empty: as configured.
        overrides: More Hydra overrides, e.g. ["train.promotion_margin=0.05"].
    """
    if reason := superseded():
        return _skip(reason)
    cfg, home = _setup(as_overrides(overrides, model=model, horizon=horizon), None)
    results: list[steps.Result] = []
    _run_train(cfg, home, results)
    return RunResults.of(results)


@flow(name="fluxora-monitor")
def monitor_flow(overrides: list[str] | None = None) -> RunResults:
    """Scheduled: drift and realized-accuracy reports, logged to the latest training run; drift or
    accuracy decay past its threshold triggers the training deployment (guardrails in the decision).

    Args:
        overrides: Hydra overrides, e.g. ["monitor.drift_share_threshold=0.5"].
    """
    if reason := superseded():
        return _skip(reason)
    cfg, home = _setup(overrides, None)
    results: list[steps.Result] = []
    monitored = _record(results, _io(monitor, cfg)(cfg, home))
    retrain_run = None
    if monitored.decision.retrain:
        retrain_run = trigger_retrain(home, monitored.decision.at, monitored.data_end)
    artifacts.publish_monitoring(monitored, retrain_run)
    return RunResults.of(results, retrain_run)


@flow(name="fluxora-weather")
def weather_flow(overrides: list[str] | None = None) -> RunResults:
    """Scheduled after the weather models' runs: collect the configured forecast source, validate
    and version the vintages, refresh the `weather_forecast` view and the online store, so the
    service serves the new vintage without retraining. Nothing configured: says so, succeeds.

    Args:
        overrides: Hydra overrides, e.g. ["data.weather_forecast.provider=open_meteo"] or
            ["data.weather_forecast.path=data/forecasts.csv"].
    """
    if reason := superseded():
        return _skip(reason)
    cfg, home = _setup(overrides, None)
    results: list[steps.Result] = []
    collected: steps.WeatherResult = _record(results, _io(weather, cfg)(cfg, home))
    if not collected.configured:
        get_run_logger().info(collected.message)
    artifacts.publish_weather(collected)
    return RunResults.of(results)


TRAIN_DEPLOYMENT = "fluxora-train/daily"


def trigger_retrain(home: Home, at: str, data_end: str) -> str | None:
    """Start the training deployment (its own concurrency limit and the promotion gate apply).

    Outside a deployment (an ad-hoc run) there is nothing to trigger; the decision stays logged.
    """
    from prefect.deployments import run_deployment
    from prefect.runtime import deployment

    from fluxora.monitoring import loop

    log = get_run_logger()
    if deployment.get_id() is None:
        log.info("retrain advised, but this run is not deployed: nothing triggered")
        return None
    run = cast(Any, run_deployment(TRAIN_DEPLOYMENT, timeout=0, as_subflow=False))
    loop.mark_triggered(home.reports, at, data_end)
    log.info("retrain triggered: %s flow run %s", TRAIN_DEPLOYMENT, run.id)
    return str(run.id)


def superseded() -> str | None:
    """Catch-up policy: a scheduled run whose slot is no longer the latest one due is skipped.

    After downtime a deployment has a pile of late runs; only the newest does the work, the
    stale ones end at once. Manual and triggered runs always run.
    """
    from prefect import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if run_id is None:
        return None
    with get_client(sync_client=True) as client:
        reason = superseded_reason(client, UUID(str(run_id)))
    if reason:
        get_run_logger().info("skipping: %s", reason)
    return reason


def superseded_reason(client: Any, run_id: UUID) -> str | None:
    """Why this run is stale (a later scheduled slot of its deployment is already due), or None."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )

    run = client.read_flow_run(run_id)
    if run.deployment_id is None or not run.auto_scheduled or run.expected_start_time is None:
        return None
    now = datetime.now(UTC)
    due = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[run.deployment_id])),
        flow_run_filter=FlowRunFilter(
            expected_start_time=FlowRunFilterExpectedStartTime(after_=run.expected_start_time, before_=cast(Any, now))
        ),
    )
    # Any later slot that is due counts, whatever its state: two late runs may start together.
    slots = [r.expected_start_time for r in due if r.id != run.id and r.auto_scheduled and r.expected_start_time]
    return stale_reason(run.expected_start_time, slots, now)


def stale_reason(slot: datetime, other_slots: list[datetime], now: datetime) -> str | None:
    """The catch-up rule: a slot is stale when a later slot of the same schedule is already due."""
    later = [s for s in other_slots if slot < s <= now]
    return f"superseded by the scheduled run due at {max(later)}" if later else None


def _brief(result: Any) -> str:
    """One log line of a step's outcome."""
    keep = ("rows", "series", "materialized_until", "drifted", "drift_share", "data_version", "changed")
    parts = [f"{k}={getattr(result, k)}" for k in keep if hasattr(result, k)]
    if (acc := getattr(result, "accuracy", None)) is not None:
        parts.append(f"accuracy={acc.status} realized_mae={acc.mae} pending={acc.points['pending']}")
    if (model := getattr(result, "model", None)) is not None:
        parts.append(f"version={model.version} champion={model.champion}")
    return " ".join(parts)
