"""MLflow "models from code" entry: a pyfunc that wraps the native files (no pickled objects).

Input: a DataFrame with columns `origin` (UTC timestamp), `load_history`, `temp_history`
(arrays, as stored in Feast) and optional `horizon`. Output: one row per (origin, step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from fluxora.features.build import LOAD_HISTORY, TEMP_HISTORY, stack
from fluxora.models.native import NativeForecaster


class LoadForecasterModel(PythonModel):
    def load_context(self, context: Any) -> None:
        self.forecaster = NativeForecaster.load(Path(context.artifacts["model_dir"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        c = self.forecaster.contract
        horizon = int((params or {}).get("horizon", c.horizon))
        origins = pd.to_datetime(model_input["origin"], utc=True).dt.tz_localize(None).to_numpy()
        widths = {LOAD_HISTORY: c.load_history_hours, TEMP_HISTORY: c.temp_history_hours}
        state = {name: stack(model_input[name], widths[name]) for name in c.state_features}
        result = self.forecaster.forecast(state, origins, horizon)
        times, values = result.times, result.point
        return pd.DataFrame(
            {
                "row": np.repeat(np.arange(len(model_input)), horizon),
                "step": np.tile(np.arange(1, horizon + 1), len(model_input)),
                "timestamp": pd.to_datetime(times.reshape(-1)).tz_localize("UTC"),
                "forecast": values.reshape(-1),
            }
        )


mlflow.models.set_model(LoadForecasterModel())
