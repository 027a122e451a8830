"""A trained forecaster as files: XGBoost JSON plus a JSON feature contract. No pickle.

This module is on the serving path: numpy and xgboost only, no training code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from fluxora.features.design import FEATURE_NAMES, design_matrix

MODEL_FILE = "model.json"
CONTRACT_FILE = "contract.json"
CONTRACT_VERSION = 1


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
        raw["feature_names"] = tuple(raw["feature_names"])
        if raw["feature_names"] != FEATURE_NAMES:
            raise ValueError("model was trained with a different feature set than this code builds")
        return cls(**raw)


class NativeForecaster:
    """Loads a saved model directory and forecasts from origin states with numpy."""

    def __init__(self, booster: object, contract: Contract) -> None:
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
        self, load_history: np.ndarray, temp_history: np.ndarray, origins: np.ndarray, horizon: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(target_times, forecasts), each of shape (n_origins, horizon)."""
        if not 1 <= horizon <= self.contract.horizon:
            raise ValueError(f"horizon must be between 1 and {self.contract.horizon}")
        c = self.contract
        design = design_matrix(load_history, temp_history, origins, horizon, c.heating_base_c, c.cooling_base_c)
        scaled = self.booster.inplace_predict(design.X)  # type: ignore[attr-defined]
        values = np.asarray(scaled, dtype="float64") * design.scale
        n = load_history.shape[0]
        return design.target_times.reshape(n, horizon), values.reshape(n, horizon)


def find_model_dir(root: Path) -> Path:
    """The one folder holding contract.json + model.json inside a downloaded MLflow model."""
    found = [p.parent for p in sorted(root.rglob(CONTRACT_FILE)) if (p.parent / MODEL_FILE).is_file()]
    if len(found) != 1:
        raise FileNotFoundError(f"expected one {CONTRACT_FILE} + {MODEL_FILE} under {root}, found {len(found)}")
    return found[0]
