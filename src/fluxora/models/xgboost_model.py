"""One global XGBoost model across series, direct multi-horizon (the step is a feature)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fluxora.config import ModelConfig
from fluxora.models.native import MODEL_FILE


class XGBoostForecaster:
    """sklearn-style: `fit(X, y)` on scaled targets, `predict(X)`; saved as XGBoost JSON."""

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg

    def fit(self, X: np.ndarray, y: np.ndarray) -> XGBoostForecaster:
        import xgboost as xgb

        keep = np.isfinite(y)
        params = {
            "objective": "reg:squarederror",
            "tree_method": "hist",
            "max_depth": self.cfg.max_depth,
            "learning_rate": self.cfg.learning_rate,
            "subsample": self.cfg.subsample,
            "colsample_bytree": self.cfg.colsample_bytree,
            "min_child_weight": self.cfg.min_child_weight,
            "seed": self.cfg.seed,
            "nthread": self.cfg.n_jobs or -1,
        }
        dtrain = xgb.QuantileDMatrix(X[keep], label=y[keep])
        self.booster_ = xgb.train(params, dtrain, num_boost_round=self.cfg.n_estimators)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster_.inplace_predict(X), dtype="float64")

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        self.booster_.save_model(str(path))
        return path
