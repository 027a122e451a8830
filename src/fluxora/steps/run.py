"""What a flow run of several steps returns: each step's result by name."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from fluxora.steps.backtest import BacktestResult
from fluxora.steps.features import FeaturesResult
from fluxora.steps.ingest import IngestResult, ValidateResult
from fluxora.steps.monitor import MonitorResult
from fluxora.steps.train import TrainResult
from fluxora.steps.weather import WeatherResult

Result = IngestResult | ValidateResult | FeaturesResult | TrainResult | BacktestResult | MonitorResult | WeatherResult


@dataclass(frozen=True)
class RunResults:
    """The steps a flow ran (None: not part of this flow), or why it was skipped."""

    ingest: IngestResult | None = None
    validate: ValidateResult | None = None
    features: FeaturesResult | None = None
    train: TrainResult | None = None
    monitor: MonitorResult | None = None
    weather: WeatherResult | None = None
    skipped: str | None = None  # a superseded scheduled run ends at once, with the reason
    retrain_run: str | None = None  # the training flow run the monitor triggered, if any

    def outputs(self) -> dict[str, Any]:
        """Each step that ran, by name, as plain data (with `skipped` and `retrain_run` when set)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value.outputs() if hasattr(value, "outputs") else value
        return out

    @classmethod
    def of(cls, results: list[Result], retrain_run: str | None = None) -> RunResults:
        return cls(**{r.step: r for r in results}, retrain_run=retrain_run)  # type: ignore[arg-type]
