"""A trained forecaster as files: `model.json` (native format per model family) plus a JSON
feature contract. No pickle: loading a model cannot run code.

This module is on the serving path: numpy (and the model family's own library) only, no
training code. Every forecaster's `predict` in training goes through the same predictors, so
a backtest scores exactly what the service would serve.

| contract.model   | model.json holds                                                       |
|------------------|------------------------------------------------------------------------|
| xgboost          | the point booster (XGBoost JSON); `quantiles.json` the quantile booster; |
|                  | `ridge.json` (newer models) the ridge base the point booster corrects  |
| ridge            | standardisation, coefficients and residual quantiles (plain JSON)      |
| seasonal_naive   | the season and residual quantiles per step (plain JSON)                |
| prophet          | per series, `prophet.serialize.model_to_json` text and residual quantiles |
| neural           | the network's layout; `weights.npz` its weights (plain arrays, served without TensorFlow), |
|                  | `model.keras` the same network as Keras saved it, `training_curve.json` its epochs        |

xgboost, ridge, prophet and neural also carry a conformal calibration table (quantile level x step,
in units of the origin's weekly mean load; `fluxora.models.calibration`), added to their
quantiles before they are sorted: the `fluxora_calibration` attribute of the quantile booster,
the `calibration` key of model.json. Models saved without one serve their raw quantiles.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from fluxora.data.resolution import Resolution
from fluxora.features.design import (
    Calendar,
    Design,
    design_matrix,
    linear_basis,
    same_hour_offsets,
    seasonal_naive,
)
from fluxora.features.names import (
    FEATURE_NAMES,
    FEATURE_SETS,
    LOAD_HISTORY,
    SERIES_KEY,
    TARGET_TEMPERATURE,
    TEMP_FORECAST,
    TEMP_HISTORY,
)

MODEL_FILE = "model.json"
CONTRACT_FILE = "contract.json"
XGB_QUANTILE_FILE = "quantiles.json"  # xgboost: the quantile booster next to model.json
XGB_BASE_FILE = "ridge.json"  # xgboost: the ridge model whose residual the point booster fits (optional)
NEURAL_WEIGHTS_FILE = "weights.npz"  # neural: the weights as plain arrays (np.load, no pickle)
TRAINING_CURVE_FILE = "training_curve.json"  # neural: per-epoch loss, val_loss, lr (logged to MLflow)
KERAS_FILE = "model.keras"  # neural: the Keras native file (keras.saving.load_model(..., safe_mode=True))
SPREAD_SCALE_ATTR = "fluxora_spread_scale"  # quantile booster attribute of older models: one factor per level
CALIBRATION_ATTR = "fluxora_calibration"  # quantile booster attribute: JSON (levels x steps) conformal table
CONTRACT_VERSION = 4
# version -> the keys it lacks, with their meaning then (before 4 every model was hourly)
OLDER_CONTRACTS = {2: {"temperature": "required", "resolution": "h"}, 3: {"resolution": "h"}}
STATE_INPUTS = (LOAD_HISTORY, TEMP_HISTORY)
# What a model needs of temperature (`Contract.temperature`), decided from its training data:
TEMPERATURE_REQUIRED = "required"  # every training series had temperature: a series without it is refused
TEMPERATURE_OPTIONAL = "optional"  # a mixed set: series without it are served load-only (has_temperature 0)
TEMPERATURE_NONE = "none"  # load-only: temperature is not read at all
TEMPERATURE_MODES = (TEMPERATURE_REQUIRED, TEMPERATURE_OPTIONAL, TEMPERATURE_NONE)
WEATHER_PERSISTENCE = "persistence"  # target temperature = same hour on the latest observed day
WEATHER_TARGET = "target"  # target temperature supplied in the state (forecast or ex post)
# target temperature from the issued forecast in the state (`temp_forecast`, the online store's
# `weather_forecast` view); steps it does not cover fall back to persistence
WEATHER_ISSUED = "issued"
WEATHER_KINDS = (WEATHER_PERSISTENCE, WEATHER_TARGET, WEATHER_ISSUED)
MODELS = ("xgboost", "ridge", "seasonal_naive", "prophet", "neural")


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
    timezone: str = "UTC"  # local calendar of the series (hour, day of week, holidays)
    holiday_country: str = ""
    holiday_subdivision: str = ""
    weather: str = WEATHER_PERSISTENCE  # where the temperature at target times comes from
    temperature: str = TEMPERATURE_REQUIRED  # required | optional | none (see TEMPERATURE_MODES)
    # the model's step ("h", "30min", "15min"): horizon and state arrays count in it; history
    # lengths stay in hours (a week of load is 168 floats hourly, 672 at 15 minutes)
    resolution: str = "h"
    version: int = CONTRACT_VERSION

    @property
    def calendar(self) -> Calendar:
        return Calendar(self.timezone, self.holiday_country, self.holiday_subdivision)

    @property
    def step(self) -> Resolution:
        return Resolution.parse(self.resolution)

    @property
    def load_history_steps(self) -> int:
        return self.step.steps(self.load_history_hours)

    @property
    def temp_history_steps(self) -> int:
        return self.step.steps(self.temp_history_hours)

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
        version = raw.get("version")
        if version != CONTRACT_VERSION and version not in OLDER_CONTRACTS:
            raise ValueError(f"unsupported contract version {version!r}")
        if version in OLDER_CONTRACTS:
            raw = {**OLDER_CONTRACTS[version], **raw, "version": CONTRACT_VERSION}
        expected = {f.name for f in fields(cls)}
        if set(raw) != expected:
            missing, extra = sorted(expected - set(raw)), sorted(set(raw) - expected)
            raise ValueError(f"malformed contract: missing keys {missing}, unexpected keys {extra}")
        for key in ("feature_names", "state_features", "quantiles"):
            raw[key] = tuple(raw[key])
        if raw["feature_names"] not in FEATURE_SETS.values():
            raise ValueError("model was trained with a different feature set than this code builds")
        if raw["model"] not in MODELS:
            raise ValueError(f"malformed contract: unknown model {raw['model']!r} (known: {list(MODELS)})")
        if raw["weather"] not in WEATHER_KINDS:
            raise ValueError(f"malformed contract: unknown weather {raw['weather']!r}")
        if raw["temperature"] not in TEMPERATURE_MODES:
            raise ValueError(f"malformed contract: unknown temperature {raw['temperature']!r}")
        try:
            Resolution.parse(str(raw["resolution"]))
        except ValueError as exc:
            raise ValueError(f"malformed contract: {exc}") from None
        return cls(**raw)


def without_temperature(state: Mapping[str, np.ndarray], contract: Contract) -> np.ndarray:
    """Indices of the origins in `state` that have no temperature although `contract` requires it."""
    if contract.temperature != TEMPERATURE_REQUIRED or TEMP_HISTORY not in state:
        return np.zeros(0, dtype="int64")
    temp = np.asarray(state[TEMP_HISTORY], dtype="float64")
    return np.flatnonzero(~np.isfinite(temp).any(axis=1))


@dataclass(frozen=True)
class Forecast:
    """Forecasts for n origins over `horizon` steps."""

    times: np.ndarray  # (n, horizon) datetime64[ns], UTC target times
    point: np.ndarray  # (n, horizon)
    quantiles: dict[float, np.ndarray]  # level -> (n, horizon), non-decreasing in level


class Predictor(Protocol):
    """One model family's numpy prediction: point (n, h) and quantiles (L, n, h) at
    `contract.quantiles`, sorted along L, including the conformal `calibration` table
    (L, H) when it has one."""

    calibration: np.ndarray | None

    def predict(
        self, state: Mapping[str, np.ndarray], origins: np.ndarray, horizon: int, contract: Contract
    ) -> tuple[np.ndarray, np.ndarray]: ...


def target_temperature(state: Mapping[str, np.ndarray], contract: Contract, horizon: int) -> np.ndarray | None:
    """The temperature at the target times a contract's model reads: None for persistence; for
    an issued-forecast model the forecast, with persistence (the same hour on the latest observed
    day) for each step it does not cover (no forecast, a stale one, or beyond its reach)."""
    if contract.weather == WEATHER_TARGET:
        return np.asarray(state[TARGET_TEMPERATURE], dtype="float64")[:, :horizon]
    if contract.weather != WEATHER_ISSUED:
        return None
    temp = np.asarray(state[TEMP_HISTORY], dtype="float64")
    day = contract.step.day
    persisted = temp[:, temp.shape[1] - 1 + np.arange(1, horizon + 1) - same_hour_offsets(horizon, day)]
    issued = forecast_cells(state, horizon)
    return np.where(np.isfinite(issued), issued, persisted)


def forecast_cells(state: Mapping[str, np.ndarray], horizon: int) -> np.ndarray:
    """(n, horizon) issued forecast temperatures in a state, NaN where a step has none. The
    state holds them at the model's step (o+1 step, o+2 steps, ...; sub-hourly steps interpolated
    between the issued hours by `fluxora.features.weather.forecast_states`)."""
    given = np.asarray(state[TEMP_FORECAST], dtype="float64")
    if given.ndim != 2:
        raise ValueError(f"{TEMP_FORECAST} must be one list of temperatures per instance")
    out = np.full((given.shape[0], horizon), np.nan)
    width = min(horizon, given.shape[1])
    out[:, :width] = given[:, :width]
    return out


def design_for(state: Mapping[str, np.ndarray], origins: np.ndarray, horizon: int, contract: Contract) -> Design:
    """The design rows a contract's model reads, from a state mapping."""
    target = target_temperature(state, contract, horizon) if TEMP_HISTORY in state else None
    reads_temperature = contract.temperature != TEMPERATURE_NONE and TEMP_HISTORY in state
    return design_matrix(
        np.asarray(state[LOAD_HISTORY], dtype="float64"),
        np.asarray(state[TEMP_HISTORY], dtype="float64") if reads_temperature else None,
        origins,
        horizon,
        contract.heating_base_c,
        contract.cooling_base_c,
        target_temperature=target if reads_temperature else None,
        calendar=contract.calendar,
        features=contract.feature_names,
        resolution=contract.step,
    )


def _by_level(scaled: np.ndarray, scale: np.ndarray, n: int, horizon: int) -> np.ndarray:
    """(rows, L) scaled quantiles -> (L, n, h) in load units, sorted so they never cross."""
    values = np.sort(np.asarray(scaled, dtype="float64").reshape(len(scale), -1), axis=1) * scale[:, None]
    return values.T.reshape(-1, n, horizon)


def add_calibration(quantiles: np.ndarray, table: np.ndarray | None, scale: np.ndarray) -> np.ndarray:
    """(L, n, h) quantiles in load units plus a conformal table (L, H >= h) in units of each
    origin's weekly mean load `scale` (n,); unsorted (the caller sorts)."""
    if table is None:
        return quantiles
    h = quantiles.shape[2]
    return quantiles + table[:, None, :h] * scale[None, :, None]


def _plus_steps(values: np.ndarray, table: np.ndarray, horizon: int) -> np.ndarray:
    """Design rows' values (rows, L) plus a per-step table (L, H_max), same (rows, L)."""
    levels = values.shape[1]
    return (values.reshape(-1, horizon, levels) + table[:, :horizon].T[None, :, :]).reshape(-1, levels)


def _median(contract: Contract, quantiles: np.ndarray) -> np.ndarray:
    return quantiles[contract.quantiles.index(0.5)]


def import_xgboost_without_sklearn() -> ModuleType:
    """xgboost, imported with scikit-learn hidden when neither is imported yet.

    xgboost imports scikit-learn at import time when it is installed (about 3 s and ~100 MB
    here), only for its scikit-learn wrapper classes. Serving uses the native Booster, so with
    scikit-learn hidden xgboost falls back to its no-scikit-learn mode. A process that has
    already imported either keeps what it has; Fluxora's training uses `xgboost.train`, which
    does not need scikit-learn either way.
    """
    module = sys.modules.get("xgboost")
    if module is not None:
        return module
    hide = "sklearn" not in sys.modules
    if hide:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` raise ImportError
    try:
        return importlib.import_module("xgboost")
    finally:
        if hide and sys.modules.get("sklearn", False) is None:
            del sys.modules["sklearn"]


@dataclass
class XGBoostPredictor:
    """A squared-error booster for the point forecast and a multi-quantile booster
    (`reg:quantileerror`, one output per level) for the spread around it: level l is
    `point + q_l - q_0.5` plus the conformal correction of (l, step), sorted so levels never
    cross. The correction table is read from the quantile booster's attributes.

    With a `base` (a ridge model on the same design rows, `ridge.json`) the point booster was
    fitted on ridge's residual: ridge's forecast is its `base_margin` and the trees add what
    ridge misses. Models saved without `ridge.json` are plain boosters."""

    booster: Any
    quantile_booster: Any
    calibration: np.ndarray | None = None  # (L, H) scaled units; None: read from the booster
    base: RidgePredictor | None = None

    def __post_init__(self) -> None:
        raw = self.quantile_booster.attr(SPREAD_SCALE_ATTR)
        self.spread_scale = np.asarray(json.loads(raw), dtype="float64") if raw else 1.0
        if self.calibration is None:
            table = self.quantile_booster.attr(CALIBRATION_ATTR)
            self.calibration = np.asarray(json.loads(table), dtype="float64") if table else None

    def predict(
        self, state: Mapping[str, np.ndarray], origins: np.ndarray, horizon: int, contract: Contract
    ) -> tuple[np.ndarray, np.ndarray]:
        design = design_for(state, origins, horizon, contract)
        point = np.asarray(self.booster.inplace_predict(design.X, base_margin=self.margin(design.X, contract)))
        point = point.astype("float64")
        q = np.asarray(self.quantile_booster.inplace_predict(design.X), dtype="float64").reshape(len(point), -1)
        spread = (q - q[:, [contract.quantiles.index(0.5)]]) * self.spread_scale
        levels = point[:, None] + spread
        if self.calibration is not None:
            levels = _plus_steps(levels, self.calibration, horizon)
        n = len(origins)
        return (point * design.scale).reshape(n, horizon), _by_level(levels, design.scale, n, horizon)

    def margin(self, X: np.ndarray, contract: Contract) -> np.ndarray | None:
        """The point booster's base margin for design rows: the base model's forecast (scaled)."""
        return None if self.base is None else self.base.point_scaled(X, contract.feature_names)

    def save(self, directory: Path, calibration: np.ndarray | None) -> None:
        """The boosters as XGBoost JSON with `calibration` (the table to store; None: none) as an
        attribute of the quantile booster, and the base as ridge JSON."""
        table = None if calibration is None else json.dumps(np.asarray(calibration).tolist())
        self.quantile_booster.set_attr(**{CALIBRATION_ATTR: table})  # None removes it
        self.booster.save_model(str(directory / MODEL_FILE))
        self.quantile_booster.save_model(str(directory / XGB_QUANTILE_FILE))
        if self.base is not None:
            (directory / XGB_BASE_FILE).write_text(self.base.to_json())

    @classmethod
    def load(cls, directory: Path) -> XGBoostPredictor:
        xgb = import_xgboost_without_sklearn()
        boosters = []
        for name in (MODEL_FILE, XGB_QUANTILE_FILE):
            booster = xgb.Booster()
            booster.load_model(str(directory / name))
            booster.set_param({"nthread": 1})  # serving: one request, one thread; no oversubscription
            boosters.append(booster)
        base = RidgePredictor.load(directory, XGB_BASE_FILE) if (directory / XGB_BASE_FILE).is_file() else None
        return cls(boosters[0], boosters[1], base=base)


def _offsets(residual_q: np.ndarray, point_scaled: np.ndarray, horizon: int) -> np.ndarray:
    """Point (rows,) plus per-step residual quantiles (L, H_max) -> (rows, L), scaled units."""
    rows = point_scaled.reshape(-1, horizon)
    return (rows[:, :, None] + residual_q[:, :horizon].T[None, :, :]).reshape(-1, residual_q.shape[0])


@dataclass
class RidgePredictor:
    """Linear model on `linear_basis` of the design rows; quantiles from its residuals per step
    plus the conformal correction."""

    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: float
    residual_q: np.ndarray  # (L, H) in scaled units
    calibration: np.ndarray | None = None  # (L, H) in scaled units

    def point_scaled(self, X: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
        """Design rows -> the point forecast (rows,) in units of each origin's weekly mean load."""
        basis = linear_basis(X, features)
        return np.asarray(((basis - self.mean) / self.std) @ self.coef + self.intercept, dtype="float64")

    def predict(
        self, state: Mapping[str, np.ndarray], origins: np.ndarray, horizon: int, contract: Contract
    ) -> tuple[np.ndarray, np.ndarray]:
        design = design_for(state, origins, horizon, contract)
        point = self.point_scaled(design.X, contract.feature_names)
        n = len(origins)
        table = self.residual_q if self.calibration is None else self.residual_q + self.calibration
        q = _by_level(_offsets(table, point, horizon), design.scale, n, horizon)
        return (point * design.scale).reshape(n, horizon), q

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": "ridge",
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
                "coef": self.coef.tolist(),
                "intercept": self.intercept,
                "residual_quantiles": self.residual_q.tolist(),
                "calibration": _table_json(self.calibration),
            }
        )

    @classmethod
    def load(cls, directory: Path, file: str = MODEL_FILE) -> RidgePredictor:
        raw = _read(directory, "ridge", file)
        return cls(
            np.asarray(raw["mean"]),
            np.asarray(raw["std"]),
            np.asarray(raw["coef"]),
            float(raw["intercept"]),
            np.asarray(raw["residual_quantiles"]),
            _table(raw),
        )


@dataclass
class NaivePredictor:
    """Seasonal naive (24 or 168 h); quantiles from its empirical residuals per step (out of
    sample by nature: the naive forecast fits nothing, so it is not calibrated further)."""

    season: int
    residual_q: np.ndarray  # (L, H) in scaled units
    calibration: np.ndarray | None = None  # (L, H) in scaled units; no forecaster sets one today

    def predict(
        self, state: Mapping[str, np.ndarray], origins: np.ndarray, horizon: int, contract: Contract
    ) -> tuple[np.ndarray, np.ndarray]:
        load = np.asarray(state[LOAD_HISTORY], dtype="float64")
        n = len(origins)
        scale = np.repeat(week_scale(load, contract.step.week), horizon)
        point = seasonal_naive(load, horizon, self.season, contract.step)
        table = self.residual_q if self.calibration is None else self.residual_q + self.calibration
        q = _by_level(_offsets(table, point / scale, horizon), scale, n, horizon)
        return point.reshape(n, horizon), q

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": "seasonal_naive",
                "season": self.season,
                "residual_quantiles": self.residual_q.tolist(),
                "calibration": _table_json(self.calibration),
            }
        )

    @classmethod
    def load(cls, directory: Path) -> NaivePredictor:
        raw = _read(directory, "seasonal_naive")
        return cls(int(raw["season"]), np.asarray(raw["residual_quantiles"]), _table(raw))


def week_scale(load_history: np.ndarray, week: int = 168) -> np.ndarray:
    """(n,) each origin's mean load over the last week (`week` steps; 1 where not positive or
    not finite): the scale of the design matrix and of the conformal tables."""
    scale = np.nanmean(load_history[:, -week:], axis=1)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


@dataclass
class ProphetPredictor:
    """One Prophet model per series (temperature regressor, holidays); quantiles from each
    series' residuals plus the conformal correction (shared by all series, relative to each
    origin's weekly mean load). Needs `series_id` in the state."""

    models: dict[str, Any]
    residual_q: dict[str, np.ndarray]  # series -> (L,) in load units
    calibration: np.ndarray | None = None  # (L, H) in units of the origin's weekly mean load

    def predict(
        self, state: Mapping[str, np.ndarray], origins: np.ndarray, horizon: int, contract: Contract
    ) -> tuple[np.ndarray, np.ndarray]:
        import pandas as pd

        from fluxora.features.design import local_ns

        n = len(origins)
        series = np.asarray(state[SERIES_KEY]).astype(str)
        if TEMP_HISTORY not in state:  # a load-only model: its series have no temperature regressor
            temp = np.full((n, horizon), np.nan)
        elif (target := target_temperature(state, contract, horizon)) is not None:
            temp = target
        else:
            lt = np.asarray(state[TEMP_HISTORY]).shape[1]
            idx = lt - 1 + np.arange(1, horizon + 1) - same_hour_offsets(horizon, contract.step.day)
            temp = np.asarray(state[TEMP_HISTORY], dtype="float64")[:, idx]
        steps = np.arange(1, horizon + 1) * np.timedelta64(contract.step.step_ns, "ns")
        times = np.asarray(origins, dtype="datetime64[ns]")[:, None] + steps[None, :]
        local = local_ns(times.astype("int64"), contract.timezone).astype("datetime64[ns]")
        point = np.full((n, horizon), np.nan)
        levels = len(contract.quantiles)
        q = np.full((levels, n, horizon), np.nan)
        for sid in np.unique(series):
            if sid not in self.models:
                raise ValueError(f"the prophet model has no series {sid!r}")
            rows = np.flatnonzero(series == sid)
            t = temp[rows].reshape(-1)
            frame = pd.DataFrame({"ds": local[rows].reshape(-1)})
            if "temperature" in self.models[sid].extra_regressors:  # fitted on a series with weather
                if not np.isfinite(t).all():
                    raise ValueError(f"series {sid!r} has no temperature; its prophet model needs it")
                frame = frame.assign(
                    temperature=t,
                    heating=np.maximum(contract.heating_base_c - t, 0.0),
                    cooling=np.maximum(t - contract.cooling_base_c, 0.0),
                )
            # Prophet returns its rows sorted by `ds` (stable); put them back in request order,
            # or several origins of one series (overlapping targets) get each other's values.
            order = np.argsort(frame["ds"].to_numpy(), kind="stable")
            flat = np.empty(len(frame))
            flat[order] = self.models[sid].predict(frame.iloc[order])["yhat"].to_numpy()
            yhat = flat.reshape(len(rows), horizon)
            point[rows] = yhat
            q[:, rows, :] = yhat[None, :, :] + self.residual_q[sid][:, None, None]
        if self.calibration is not None:
            load = np.asarray(state[LOAD_HISTORY], dtype="float64")
            q = add_calibration(q, self.calibration, week_scale(load, contract.step.week))
        return point, np.sort(q, axis=0)

    def to_json(self) -> str:
        from prophet.serialize import model_to_json

        return json.dumps(
            {
                "kind": "prophet",
                "models": {sid: model_to_json(m) for sid, m in self.models.items()},
                "residual_quantiles": {sid: r.tolist() for sid, r in self.residual_q.items()},
                "calibration": _table_json(self.calibration),
            }
        )

    @classmethod
    def load(cls, directory: Path) -> ProphetPredictor:
        from prophet.serialize import model_from_json

        raw = _read(directory, "prophet")
        models = {sid: model_from_json(text) for sid, text in raw["models"].items()}
        return cls(models, {sid: np.asarray(r) for sid, r in raw["residual_quantiles"].items()}, _table(raw))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


@dataclass
class NeuralPredictor:
    """The neural forecaster's network, forward in numpy (the service never imports TensorFlow).

    Input: `linear_basis` of the design rows (what ridge reads), non-finite entries replaced by
    the column mean; standardised (`norm_mean`, `norm_var`: Keras' Normalization layer); hidden
    ReLU layers; the median is linear in [standardised input, last hidden layer] (a linear skip),
    the other levels sit at cumulative softplus offsets below and above it (`head`: the fixed
    matrix that maps [median, offsets] to the levels), so levels never cross. Outputs are loads
    scaled by the origin's weekly mean; the point forecast is the median. Plus the conformal
    `calibration` table like the other families."""

    norm_mean: np.ndarray  # (P,)
    norm_var: np.ndarray  # (P,)
    hidden: list[tuple[np.ndarray, np.ndarray]]  # (W (in, out), b (out,)) per hidden layer
    median: tuple[np.ndarray, np.ndarray]  # W (P + units, 1), b (1,)
    offsets: tuple[np.ndarray, np.ndarray]  # W (units, L - 1), b (L - 1,)
    head: np.ndarray  # (L, L): [median, offsets] -> levels
    calibration: np.ndarray | None = None  # (L, H) in scaled units

    EPSILON = 1e-7  # keras.backend.epsilon(): the floor of Normalization's standard deviation

    def inputs(self, X: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
        """Design rows -> the network's input (the interaction basis, gaps at the column mean)."""
        basis = linear_basis(X, features)
        return np.where(np.isfinite(basis), basis, self.norm_mean.astype("float32"))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network on inputs (rows, P) -> (rows, L) scaled quantiles, in float32 like Keras."""
        x = np.asarray(x, dtype="float32")
        z = (x - self.norm_mean) / np.maximum(np.sqrt(self.norm_var), np.float32(self.EPSILON))
        h = z
        for w, b in self.hidden:
            h = _relu(h @ w + b)
        med = np.concatenate([z, h], axis=1) @ self.median[0] + self.median[1]
        off = _softplus(h @ self.offsets[0] + self.offsets[1])
        return np.concatenate([med, off], axis=1) @ self.head

    def predict(
        self, state: Mapping[str, np.ndarray], origins: np.ndarray, horizon: int, contract: Contract
    ) -> tuple[np.ndarray, np.ndarray]:
        design = design_for(state, origins, horizon, contract)
        levels = np.asarray(self.forward(self.inputs(design.X, contract.feature_names)), dtype="float64")
        point = levels[:, contract.quantiles.index(0.5)].copy()
        if self.calibration is not None:
            levels = _plus_steps(levels, self.calibration, horizon)
        n = len(origins)
        return (point * design.scale).reshape(n, horizon), _by_level(levels, design.scale, n, horizon)

    def arrays(self) -> dict[str, np.ndarray]:
        """The weights as named plain arrays (`weights.npz`)."""
        out = {"norm_mean": self.norm_mean, "norm_var": self.norm_var, "head": self.head}
        for i, (w, b) in enumerate(self.hidden):
            out[f"hidden_{i}_kernel"], out[f"hidden_{i}_bias"] = w, b
        out["median_kernel"], out["median_bias"] = self.median
        out["offsets_kernel"], out["offsets_bias"] = self.offsets
        return {k: np.asarray(v, dtype="float32") for k, v in out.items()}

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": "neural",
                "weights": NEURAL_WEIGHTS_FILE,
                "hidden_layers": len(self.hidden),
                "activation": "relu",
                "calibration": _table_json(self.calibration),
            }
        )

    def save(self, directory: Path) -> None:
        (directory / MODEL_FILE).write_text(self.to_json())
        arrays: dict[str, Any] = self.arrays()
        np.savez(directory / NEURAL_WEIGHTS_FILE, **arrays)

    @classmethod
    def load(cls, directory: Path) -> NeuralPredictor:
        raw = _read(directory, "neural")
        with np.load(directory / NEURAL_WEIGHTS_FILE, allow_pickle=False) as npz:
            a = {k: np.asarray(npz[k], dtype="float32") for k in npz.files}
        hidden = [(a[f"hidden_{i}_kernel"], a[f"hidden_{i}_bias"]) for i in range(int(raw["hidden_layers"]))]
        return cls(
            a["norm_mean"],
            a["norm_var"],
            hidden,
            (a["median_kernel"], a["median_bias"]),
            (a["offsets_kernel"], a["offsets_bias"]),
            a["head"],
            _table(raw),
        )


def _table_json(table: np.ndarray | None) -> list[list[float]] | None:
    return None if table is None else np.asarray(table, dtype="float64").tolist()


def _table(raw: dict[str, Any]) -> np.ndarray | None:
    """The conformal table of a model.json; None for models saved before calibration existed."""
    table = raw.get("calibration")
    return None if table is None else np.asarray(table, dtype="float64")


def _read(directory: Path, kind: str, file: str = MODEL_FILE) -> dict[str, Any]:
    raw = json.loads((directory / file).read_text())
    if not isinstance(raw, dict) or raw.get("kind") != kind:
        raise ValueError(f"{directory / file} is not a {kind} model")
    return raw


LOADERS: dict[str, Callable[[Path], Predictor]] = {
    "xgboost": XGBoostPredictor.load,
    "ridge": RidgePredictor.load,
    "seasonal_naive": NaivePredictor.load,
    "prophet": ProphetPredictor.load,
    "neural": NeuralPredictor.load,
}


class NativeForecaster:
    """Loads a saved model directory and forecasts from origin states."""

    def __init__(self, predictor: Predictor, contract: Contract) -> None:
        self.predictor = predictor
        self.contract = contract

    @classmethod
    def load(cls, directory: Path) -> NativeForecaster:
        contract = Contract.from_json((directory / CONTRACT_FILE).read_text())
        return cls(LOADERS[contract.model](directory), contract)

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
        if (lacking := without_temperature(state, c)).size:
            raise ValueError(f"{lacking.size} origin(s) have no temperature; this model was trained with it")
        origins = np.asarray(origins, dtype="datetime64[ns]")
        point, q = self.predictor.predict(state, origins, horizon, c)
        steps = np.arange(1, horizon + 1) * np.timedelta64(c.step.step_ns, "ns")  # the model's step
        times = origins[:, None] + steps[None, :]
        return Forecast(
            times=times,
            point=point,
            quantiles={float(level): q[c.quantiles.index(level)] for level in quantiles},
        )

    def forecast_all(self, state: Mapping[str, np.ndarray], origins: np.ndarray, horizon: int) -> Forecast:
        """Point and every quantile level the model provides."""
        return self.forecast(state, origins, horizon, self.contract.quantiles)


def find_model_dir(root: Path) -> Path:
    """The one folder holding contract.json + model.json inside a downloaded MLflow model."""
    found = [p.parent for p in sorted(root.rglob(CONTRACT_FILE)) if (p.parent / MODEL_FILE).is_file()]
    if len(found) != 1:
        raise FileNotFoundError(f"expected one {CONTRACT_FILE} + {MODEL_FILE} under {root}, found {len(found)}")
    return found[0]
