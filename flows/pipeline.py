"""The main job as one Prefect flow: ingest -> validate -> features -> train -> monitor."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from fluxora import pipeline
from fluxora.config import FluxoraConfig, compose
from fluxora.paths import Home


def _step(name: str):  # type: ignore[no-untyped-def]
    return task(name=name, cache_policy=NO_CACHE, log_prints=False)


@_step("ingest")
def ingest(cfg: FluxoraConfig, home: Home) -> pipeline.StepResult:
    return pipeline.ingest(cfg, home)


@_step("validate")
def validate(cfg: FluxoraConfig, home: Home) -> pipeline.StepResult:
    return pipeline.validate(cfg, home)


@_step("features")
def features(cfg: FluxoraConfig, home: Home) -> pipeline.StepResult:
    return pipeline.features(cfg, home)


@_step("train")
def train(cfg: FluxoraConfig, home: Home) -> pipeline.StepResult:
    return pipeline.train(cfg, home, progress=get_run_logger().info)


@_step("monitor")
def monitor(cfg: FluxoraConfig, home: Home, run_id: str) -> pipeline.StepResult:
    return pipeline.monitor(cfg, home, run_id)


@flow(name="fluxora-pipeline", log_prints=False)
def pipeline_flow(overrides: list[str] | None = None) -> dict[str, Any]:
    """Run the whole pipeline with Hydra overrides (e.g. ["train.horizon=48"])."""
    log = get_run_logger()
    cfg = compose(overrides or [])
    home = Home.from_env().ensure()
    log.info("FLUXORA_HOME=%s config=%s", home.root, cfg.fingerprint())
    results: dict[str, Any] = {}
    for step in (ingest, validate, features, train):
        result = step(cfg, home)
        log.info("%s: %s", result.step, _brief(result.outputs))
        results[result.step] = result.outputs
    drift = monitor(cfg, home, results["train"]["model"]["run_id"])
    log.info("monitor: %s", _brief(drift.outputs))
    results["monitor"] = drift.outputs
    return results


def _brief(outputs: dict[str, Any]) -> str:
    keep = ("rows", "series", "materialized_until", "drifted", "drift_share")
    parts = [f"{k}={outputs[k]}" for k in keep if k in outputs]
    if "model" in outputs:
        parts.append(f"version={outputs['model']['version']} champion={outputs['model']['champion']}")
    return " ".join(parts)
