"""The pipeline's steps as plain functions of (config, home), each returning a frozen result.

The Prefect flows, the DVC stages (`fluxora stage`) and the CLI all call these, so each job is
implemented once. Each step reads its inputs from the home and writes its outputs there
atomically; `home` comes from `fluxora.runtime.prepare`, bound to the configured tracking server.
"""

from fluxora.steps.backtest import BacktestResult, backtest
from fluxora.steps.base import StepResult
from fluxora.steps.features import FeaturesResult, features
from fluxora.steps.ingest import IngestResult, ValidateResult, ingest, validate
from fluxora.steps.monitor import AccuracyBrief, MonitorResult, monitor
from fluxora.steps.run import Result, RunResults
from fluxora.steps.train import TrainResult, train
from fluxora.steps.tune import TuneResult, tune
from fluxora.steps.weather import WeatherResult, weather

# The DVC stages, in order (`fluxora stage NAME`).
STAGES = {"ingest": ingest, "validate": validate, "features": features, "train": train, "monitor": monitor}

__all__ = [
    "STAGES",
    "AccuracyBrief",
    "BacktestResult",
    "FeaturesResult",
    "IngestResult",
    "MonitorResult",
    "Result",
    "RunResults",
    "StepResult",
    "TrainResult",
    "TuneResult",
    "ValidateResult",
    "WeatherResult",
    "backtest",
    "features",
    "ingest",
    "monitor",
    "train",
    "tune",
    "validate",
    "weather",
]
