"""A trained forecaster as files: XGBoost JSON plus a JSON feature contract. No pickle.

This module is on the serving path: numpy and xgboost only, no training code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from fluxora.features.build import LOAD_HISTORY, TEMP_HISTORY
from fluxora.features.design import FEATURE_NAMES, design_matrix

MODEL_FILE = "model.json"
CONTRACT_FILE = "contract.json"
CONTRACT_VERSION = 1
STATE_INPUTS = (LOAD_HISTORY, TEMP_HISTORY)


@dataclass(frozen=True)
class Contract:
    """What a model needs as input, carried inside the registered artifact."""

    model: str
    horizon: int
    load_history_hours: int
    temp_history_hours: int
    heating_base_c: float
    cooling_base_c: float
    feature_service: str
    feature_names: tuple[str, ...] = FEATURE_NAMES
    state_features: tuple[str, ...] = STATE_INPUTS  # Feast features the model reads, per origin
    quantiles: tuple[float, ...] = ()  # quantile levels the model can forecast
    version: int = CONTRACT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Contract:
        """Parse and check a contract; any malformation is a ValueError naming what is wrong."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"malformed contract: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError("malformed contract: not a JSON object")
        if raw.get("version") != CONTRACT_VERSION:
            raise ValueError(f"unsupported contract version {raw.get('version')!r}")
        expected = {f.name for f in fields(cls)}
        if set(raw) != expected:
            missing, extra = sorted(expected - set(raw)), sorted(set(raw) - expected)
            raise ValueError(f"malformed contract: missing keys {missing}, unexpected keys {extra}")
        for key in ("feature_names", "state_features", "quantiles"):
            raw[key] = tuple(raw[key])
        if raw["feature_names"] != FEATURE_NAMES:
            raise ValueError("model was trained with a different feature set than this code builds")
        return cls(**raw)


@dataclass(frozen=True)
class Forecast:
    """Forecasts for n origins over `horizon` steps."""

    times: np.ndarray  # (n, horizon) datetime64[ns], UTC target times
    point: np.ndarray  # (n, horizon)
    quantiles: dict[float, np.ndarray]  # level -> (n, horizon), non-decreasing in level


class NativeForecaster:
    """Loads a saved model directory and forecasts from origin states with numpy."""

    def __init__(self, booster: Any, contract: Contract) -> None:
        self.booster = booster
        self.contract = contract

    @classmethod
    def load(cls, directory: Path) -> NativeForecaster:
        import xgboost as xgb

        contract = Contract.from_json((directory / CONTRACT_FILE).read_text())
        booster = xgb.Booster()
        booster.load_model(str(directory / MODEL_FILE))
        booster.set_param({"nthread": 1})  # serving: one request, one thread; no oversubscription
        return cls(booster, contract)

    def forecast(
        self,
        state: Mapping[str, np.ndarray],
        origins: np.ndarray,
        horizon: int,
        quantiles: Sequence[float] = (),
    ) -> Forecast:
        """Forecast from states: `state[name]` is (n, ...) for each of `contract.state_features`,
        `origins` (n,) datetime64 UTC. Raises ValueError for a horizon or quantile the model lacks."""
        c = self.contract
        if not 1 <= horizon <= c.horizon:
            raise ValueError(f"horizon must be between 1 and {c.horizon}")
        unknown = sorted(set(quantiles) - set(c.quantiles))
        if unknown:
            raise ValueError(f"quantiles {unknown} not available; this model provides {list(c.quantiles)}")
        missing = [f for f in c.state_features if f not in state]
        if missing:
            raise ValueError(f"missing state features {missing}")
        design = design_matrix(
            state[LOAD_HISTORY], state[TEMP_HISTORY], origins, horizon, c.heating_base_c, c.cooling_base_c
        )
        scaled = self.booster.inplace_predict(design.X)
        n = len(origins)
        point = (np.asarray(scaled, dtype="float64") * design.scale).reshape(n, horizon)
        return Forecast(times=design.target_times.reshape(n, horizon), point=point, quantiles={})


def find_model_dir(root: Path) -> Path:
    """The one folder holding contract.json + model.json inside a downloaded MLflow model."""
    found = [p.parent for p in sorted(root.rglob(CONTRACT_FILE)) if (p.parent / MODEL_FILE).is_file()]
    if len(found) != 1:
        raise FileNotFoundError(f"expected one {CONTRACT_FILE} + {MODEL_FILE} under {root}, found {len(found)}")
    return found[0]
