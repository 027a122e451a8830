"""MLflow "models from code" entry: a pyfunc that wraps the native files (no pickled objects).

Input: a DataFrame with columns `origin` (UTC timestamp) and the contract's state features
(`load_history`, `temp_history` as arrays, as stored in Feast; `series_id` for per-series
models; `target_temperature` arrays for models trained with target-time weather). Param
`horizon` (default: the contract's). Output: one row per (origin, step) with `forecast` and
one column `q<level>` per quantile level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from fluxora.features.build import stack
from fluxora.features.names import LOAD_HISTORY, SERIES_KEY, TARGET_TEMPERATURE, TEMP_HISTORY
from fluxora.models.native import NativeForecaster


class LoadForecasterModel(PythonModel):
    def load_context(self, context: Any) -> None:
        self.forecaster = NativeForecaster.load(Path(context.artifacts["model_dir"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        c = self.forecaster.contract
        horizon = int((params or {}).get("horizon", c.horizon))
        origins = pd.to_datetime(model_input["origin"], utc=True).dt.tz_localize(None).to_numpy()
        widths = {LOAD_HISTORY: c.load_history_steps, TEMP_HISTORY: c.temp_history_steps, TARGET_TEMPERATURE: None}
        state: dict[str, np.ndarray] = {}
        for name in c.state_features:
            if name == SERIES_KEY:
                state[name] = model_input[name].astype(str).to_numpy()
            else:
                width = widths.get(name) or len(model_input[name].iloc[0])
                state[name] = stack(model_input[name], width)
        result = self.forecaster.forecast(state, origins, horizon, c.quantiles)
        out = pd.DataFrame(
            {
                "row": np.repeat(np.arange(len(model_input)), horizon),
                "step": np.tile(np.arange(1, horizon + 1), len(model_input)),
                "timestamp": pd.to_datetime(result.times.reshape(-1)).tz_localize("UTC"),
                "forecast": result.point.reshape(-1),
            }
        )
        for level, values in result.quantiles.items():
            out[f"q{level:g}"] = values.reshape(-1)
        return out


mlflow.models.set_model(LoadForecasterModel())
