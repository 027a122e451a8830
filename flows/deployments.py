"""Prefect deployments for the scheduled flows, served by `fluxora deploy`."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from flows.pipeline import TRAIN_DEPLOYMENT, ingest_flow, monitor_flow, train_flow
from fluxora.config import FluxoraConfig

# `fluxora trigger NAME` -> deployment "<flow name>/<deployment name>"
DEPLOYMENTS = {
    "ingest": "fluxora-ingest/hourly",
    "train": TRAIN_DEPLOYMENT,
    "monitor": "fluxora-monitor/hourly",
}


def build(cfg: FluxoraConfig, overrides: list[str]) -> list[Any]:
    """Runner deployments with cron schedules in `deploy.timezone` (DST-aware: a 02:30 local job
    stays at 02:30 local time across the change). Training runs one at a time; a second trigger
    waits in the queue rather than running concurrently."""
    d = cfg.deploy
    params = {"overrides": list(overrides)}
    return [
        ingest_flow.to_deployment(
            name="hourly",
            schedules=[Cron(d.ingest_cron, timezone=d.timezone)],
            parameters=params,
            description="Ingest, validate and materialize features.",
        ),
        train_flow.to_deployment(
            name="daily",
            schedules=[Cron(d.train_cron, timezone=d.timezone)],
            parameters=params,
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
            description="Train, evaluate against seasonal naive, register; champion only if better.",
        ),
        monitor_flow.to_deployment(
            name="hourly",
            schedules=[Cron(d.monitor_cron, timezone=d.timezone)],
            parameters=params,
            description="Evidently drift report on the latest data.",
        ),
    ]


def serve(cfg: FluxoraConfig, overrides: list[str]) -> None:
    """Register the deployments and run their schedules in this process until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*build(cfg, overrides))
