"""Prefect deployments for the scheduled flows, served by `fluxora deploy`."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from flows.pipeline import TRAIN_DEPLOYMENT, ingest_flow, monitor_flow, train_flow, weather_flow
from fluxora.config import FluxoraConfig

# `fluxora trigger NAME` -> deployment "<flow name>/<deployment name>"
DEPLOYMENTS = {
    "ingest": "fluxora-ingest/hourly",
    "train": TRAIN_DEPLOYMENT,
    "monitor": "fluxora-monitor/hourly",
    "weather": "fluxora-weather/after-model-runs",
}


def build(cfg: FluxoraConfig, overrides: list[str]) -> list[Any]:
    """Runner deployments with cron schedules in `deploy.timezone` (DST-aware: a 02:30 local job
    stays at 02:30 local time across the change). Training runs one at a time; a second trigger
    waits in the queue rather than running concurrently.

    Each takes its flow's typed parameters (empty by default: as configured) next to the free
    `overrides`, whose default is what `fluxora deploy` was given."""
    d = cfg.deploy
    params = {"overrides": list(overrides)}
    given = f" Deployed with overrides {list(overrides)}." if overrides else ""
    return [
        ingest_flow.to_deployment(
            name="hourly",
            schedules=[Cron(d.ingest_cron, timezone=d.timezone)],
            parameters=params,
            tags=["fluxora", "ingest"],
            description=(
                "Ingest the configured source (or `data_path`), run the validation gate, rebuild the "
                "features and materialize the online store. Parameters: `data_path`, `series` (a subset), "
                f"free Hydra `overrides`.{given}"
            ),
        ),
        train_flow.to_deployment(
            name="daily",
            schedules=[Cron(d.train_cron, timezone=d.timezone)],
            parameters=params,
            tags=["fluxora", "train"],
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
            description=(
                "Backtest the model against both seasonal naives and the champion, refit and register it; "
                "it becomes champion only if the promotion gate says so. One run at a time. Parameters: "
                f"`model`, `horizon`, free Hydra `overrides`.{given}"
            ),
        ),
        monitor_flow.to_deployment(
            name="hourly",
            schedules=[Cron(d.monitor_cron, timezone=d.timezone)],
            parameters=params,
            tags=["fluxora", "monitor"],
            description=(
                "Drift of each series against its own history and realized accuracy of the served "
                "forecasts; past a threshold it triggers fluxora-train/daily (cooldown and minimum new "
                f"data apply). Parameters: free Hydra `overrides`.{given}"
            ),
        ),
        weather_flow.to_deployment(
            name="after-model-runs",
            schedules=[Cron(d.weather_cron, timezone=d.timezone)],
            parameters=params,
            tags=["fluxora", "weather"],
            description=(
                "Collect the configured weather-forecast source (data.weather_forecast: a file, Open-Meteo "
                "or synthetic), validate and version the vintages, refresh the weather_forecast view and "
                "the online store; the service serves the new vintage without retraining. Nothing "
                f"configured: does nothing. Parameters: free Hydra `overrides`.{given}"
            ),
        ),
    ]


def serve(cfg: FluxoraConfig, overrides: list[str]) -> None:
    """Register the deployments and run their schedules in this process until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*build(cfg, overrides))
