"""Forecasters, sklearn-style: `fit(batch)` on an `OriginBatch`, `predict(batch)` -> Forecast,
`save(directory)` in the model family's native format. Fitted attributes end in `_`.

Prediction always goes through the serving path (`fluxora.models.native`), so a backtest
scores exactly what the service would serve.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from fluxora.config import FluxoraConfig, ModelConfig
from fluxora.errors import ConfigError
from fluxora.features.names import FEATURE_SETS, SERIES_KEY, TARGET_TEMPERATURE, TEMP_FORECAST, TEMP_HISTORY
from fluxora.models.calibration import conformal_table, holdout_split
from fluxora.models.native import (
    CONTRACT_FILE,
    KERAS_FILE,
    MODEL_FILE,
    STATE_INPUTS,
    TEMPERATURE_NONE,
    TEMPERATURE_OPTIONAL,
    TEMPERATURE_REQUIRED,
    TRAINING_CURVE_FILE,
    WEATHER_ISSUED,
    WEATHER_PERSISTENCE,
    WEATHER_TARGET,
    Contract,
    Forecast,
    NaivePredictor,
    NativeForecaster,
    NeuralPredictor,
    Predictor,
    ProphetPredictor,
    RidgePredictor,
    XGBoostPredictor,
    design_for,
    week_scale,
)
from fluxora.models.panel import OriginBatch

CANDIDATES = ("seasonal_naive", "ridge", "xgboost", "prophet", "neural")
NEEDS = {"neural": "tensorflow"}  # candidates that need an optional library: the module to find
BASELINES = ("seasonal_naive_daily", "seasonal_naive_weekly")


def make_contract(cfg: FluxoraConfig, model: str, horizon: int, weather: str) -> Contract:
    """The feature contract of a model trained with this config; `weather` is a weather mode
    (persistence: nothing at the targets; issued: the issued forecast the online store holds,
    `temp_forecast`; ex_post/forecast: a target temperature in the state)."""
    kind = {"persistence": WEATHER_PERSISTENCE, "issued": WEATHER_ISSUED}.get(weather, WEATHER_TARGET)
    at_targets = {WEATHER_TARGET: (TARGET_TEMPERATURE,), WEATHER_ISSUED: (TEMP_FORECAST,)}.get(kind, ())
    state = STATE_INPUTS + ((SERIES_KEY,) if model == "prophet" else ()) + at_targets
    fc = cfg.features
    if fc.feature_service not in FEATURE_SETS:
        known = ", ".join(FEATURE_SETS)
        raise ConfigError(f"invalid configuration: features.feature_service: {fc.feature_service!r} (known: {known})")
    return Contract(
        model=model,
        horizon=horizon,
        load_history_hours=fc.load_history_hours,
        temp_history_hours=fc.temp_history_hours,
        heating_base_c=fc.heating_base_c,
        cooling_base_c=fc.cooling_base_c,
        feature_service=fc.feature_service,
        feature_names=FEATURE_SETS[fc.feature_service],
        state_features=state,
        quantiles=tuple(sorted({float(q) for q in cfg.train.quantiles} | {0.5})),
        timezone=fc.timezone,
        holiday_country=fc.holiday_country,
        holiday_subdivision=fc.holiday_subdivision,
        weather=kind,
    )


def temperature_mode(temp_history: np.ndarray) -> str:
    """What a model fitted on these origins needs of temperature: every origin has some
    (required), none has (none: load-only), or a mix (optional)."""
    has = np.isfinite(np.asarray(temp_history, dtype="float64")).any(axis=1)
    if has.all():
        return TEMPERATURE_REQUIRED
    return TEMPERATURE_OPTIONAL if has.any() else TEMPERATURE_NONE


def with_temperature_mode(contract: Contract, mode: str) -> Contract:
    """The contract of a model fitted with temperature `mode`: a load-only one reads no weather."""
    if mode != TEMPERATURE_NONE:
        return replace(contract, temperature=mode)
    state = tuple(f for f in contract.state_features if f not in (TEMP_HISTORY, TARGET_TEMPERATURE, TEMP_FORECAST))
    return replace(contract, temperature=mode, state_features=state, weather=WEATHER_PERSISTENCE)


def residual_quantiles(residuals: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """(n, H) residuals -> (L, H) empirical quantiles per step (0 where a step has none)."""
    finite = np.isfinite(residuals).any(axis=0)
    out = np.zeros((len(levels), residuals.shape[1]))
    if finite.any():
        out[:, finite] = np.nanquantile(residuals[:, finite], levels, axis=0)
    return out


class Forecaster(ABC):
    """Base: holds the contract; subclasses set `predictor_` in `fit_model` and write their
    native files. `fit` adds the conformal calibration of the quantiles for families that
    learn from the data (`calibrated`)."""

    name = "base"
    calibrated = True  # fit holds out recent origins to calibrate the quantiles

    def __init__(self, contract: Contract, cfg: ModelConfig) -> None:
        self.contract = contract
        self.cfg = cfg
        self.predictor_: Predictor | None = None
        self.calibration_: np.ndarray | None = None  # (L, H) conformal table, scaled units

    @abstractmethod
    def fit_model(self, batch: OriginBatch) -> Forecaster:
        """Fit the model family on a batch of origins; sets `predictor_` (uncalibrated)."""

    def fit(self, batch: OriginBatch) -> Forecaster:
        """Fit on a batch of origins. Calibrated families first fit on all but the latest
        `model.calibration_days` of origins, score their quantiles on those
        (`fluxora.models.calibration`), then refit on everything and keep the table.
        The contract records whether the model needs temperature (`temperature_mode`)."""
        self.contract = with_temperature_mode(self.contract, temperature_mode(batch.temp_history))
        self.contract = replace(self.contract, resolution=batch.resolution.name)  # the step it counts in
        split = (
            holdout_split(batch.origins, batch.horizon, self.cfg.calibration_days, batch.resolution)
            if self.calibrated
            else None
        )
        if split is not None:
            fit_rows, held_rows = split
            # a series the held-out fit never saw cannot be scored by per-series models
            held_rows = held_rows[np.isin(batch.series[held_rows], batch.series[fit_rows])]
        if split is None or held_rows.size == 0:
            self.calibration_ = None
            return self.fit_model(batch)
        held = batch.take(held_rows)
        raw = self.fit_held_out(batch.take(fit_rows), held).predict(held)
        quantiles = np.stack([raw.quantiles[level] for level in self.contract.quantiles])
        week = self.contract.step.week
        table = conformal_table(held.y, quantiles, self.contract.quantiles, week_scale(held.load_history, week))
        self.fit_model(batch)
        assert self.predictor_ is not None
        self.predictor_.calibration = self.calibration_ = table
        return self

    def fit_held_out(self, batch: OriginBatch, held: OriginBatch) -> Forecaster:
        """The calibration fit: on the older origins, knowing the held-out ones it is scored on
        (a family may stop early on them; the refit on every origin then reuses what it learnt)."""
        return self.fit_model(batch)

    @abstractmethod
    def write_model(self, directory: Path) -> None:
        """Write the fitted model's native (never pickled) files into `directory`."""

    def predict(self, batch: OriginBatch) -> Forecast:
        """Point and every quantile level, through the serving path."""
        if self.predictor_ is None:
            raise RuntimeError(f"{self.name} is not fitted")
        native = NativeForecaster(self.predictor_, self.contract)
        return native.forecast_all(batch.state(), batch.origins, batch.horizon)

    def save(self, directory: Path) -> Path:
        """The model folder the registry and the service load: native files plus the contract."""
        directory.mkdir(parents=True, exist_ok=True)
        self.write_model(directory)
        (directory / CONTRACT_FILE).write_text(self.contract.to_json())
        return directory


class JsonModelForecaster(Forecaster):
    """A forecaster whose whole fitted state is one JSON document (`model.json`)."""

    @abstractmethod
    def model_json(self) -> str:
        """The fitted model as JSON."""

    def write_model(self, directory: Path) -> None:
        (directory / MODEL_FILE).write_text(self.model_json())


def _scaled_targets(batch: OriginBatch, contract: Contract) -> tuple[np.ndarray, np.ndarray]:
    design = design_for(batch.state(), batch.origins, batch.horizon, contract)
    return design.X, batch.y.reshape(-1) / design.scale


def point_params(c: ModelConfig) -> dict[str, Any]:
    """The point booster's XGBoost parameters (squared error), serial and distributed fits alike."""
    return _booster_params(c) | {
        "objective": "reg:squarederror",
        "max_depth": c.max_depth,
        "learning_rate": c.learning_rate,
    }


def spread_params(c: ModelConfig, quantiles: tuple[float, ...]) -> dict[str, Any]:
    """The quantile booster's XGBoost parameters (one output per level of `quantiles`)."""
    return _booster_params(c) | {
        "objective": "reg:quantileerror",
        "quantile_alpha": np.asarray(quantiles),
        "max_depth": c.quantile_max_depth,
        "learning_rate": c.quantile_learning_rate,
        "min_child_weight": c.quantile_min_child_weight,
    }


def _booster_params(c: ModelConfig) -> dict[str, Any]:
    return {
        "tree_method": "hist",
        "subsample": c.subsample,
        "colsample_bytree": c.colsample_bytree,
        "min_child_weight": c.min_child_weight,
        "reg_lambda": c.reg_lambda,
        "seed": c.seed,
        "nthread": c.n_jobs or -1,
    }


class XGBoostForecaster(Forecaster):
    """One global model across series, direct multi-horizon (the step is a feature), on loads
    scaled by each series' weekly mean; one output per quantile level (`reg:quantileerror`).

    With `model.xgb_base: ridge` the point booster starts from a ridge model fitted on the same
    design rows (its forecast is the `base_margin`) and learns ridge's residual; with
    `model.early_stopping_rounds` the calibration fit stops adding trees when the held-out
    origins' error has not improved for that many rounds, and the refit on every origin grows
    as many trees (at most `n_estimators`)."""

    name = "xgboost"

    def __init__(self, contract: Contract, cfg: ModelConfig) -> None:
        super().__init__(contract, cfg)
        if cfg.xgb_base not in ("ridge", "none"):
            raise ConfigError(f"invalid configuration: model.xgb_base: {cfg.xgb_base!r} (use ridge or none)")
        self.rounds_: int | None = None  # trees the held-out fit chose; None: n_estimators

    def fit(self, batch: OriginBatch) -> XGBoostForecaster:
        self.rounds_ = None  # chosen afresh by this fit's held-out origins
        super().fit(batch)
        return self

    def fit_held_out(self, batch: OriginBatch, held: OriginBatch) -> XGBoostForecaster:
        return self.fit_model(batch, held if self.cfg.early_stopping_rounds > 0 else None)

    def fit_model(self, batch: OriginBatch, valid: OriginBatch | None = None) -> XGBoostForecaster:
        import xgboost as xgb

        c = self.cfg
        X, y = _scaled_targets(batch, self.contract)
        keep = np.flatnonzero(np.isfinite(y))
        base = self._fit_base(X, y, batch)
        margin = None if base is None else base.point_scaled(X[keep], self.contract.feature_names)
        point = point_params(c)
        train = xgb.QuantileDMatrix(X[keep], label=y[keep], base_margin=margin)
        if valid is None:
            rounds = c.n_estimators if self.rounds_ is None else self.rounds_
            self.booster_ = xgb.train(point, train, num_boost_round=rounds)
        else:
            self.booster_ = self._early_stopped(point, train, valid, base)
        # The quantile objective's leaf line search is ~7x slower per tree than squared error
        # here, so the spread model is smaller and fits on a random subsample of rows. Its
        # in-sample quantiles are too narrow; `fit` calibrates them on held-out origins.
        rng = np.random.default_rng(c.seed)
        sub = np.sort(rng.choice(keep, min(len(keep), c.quantile_max_rows), replace=False))
        spread = spread_params(c, self.contract.quantiles)
        self.quantile_booster_ = xgb.train(
            spread, xgb.QuantileDMatrix(X[sub], label=y[sub]), num_boost_round=c.quantile_estimators
        )
        self.predictor_ = XGBoostPredictor(self.booster_, self.quantile_booster_, base=base)
        return self

    def _fit_base(self, X: np.ndarray, y: np.ndarray, batch: OriginBatch) -> RidgePredictor | None:
        if self.cfg.xgb_base == "none":
            return None
        return fit_ridge(X, y, self.contract, self.cfg.ridge_alpha, len(batch))

    def _early_stopped(
        self, params: dict[str, Any], train: Any, valid: OriginBatch, base: RidgePredictor | None
    ) -> Any:
        """Boost on `train` until the held-out origins' squared error stops improving; keeps the
        number of trees for the refit (`rounds_`) and returns the booster cut at the best round."""
        import xgboost as xgb

        Xv, yv = _scaled_targets(valid, self.contract)
        kv = np.flatnonzero(np.isfinite(yv))
        margin = None if base is None else base.point_scaled(Xv[kv], self.contract.feature_names)
        dvalid = xgb.DMatrix(Xv[kv], label=yv[kv], base_margin=margin)
        booster = xgb.train(
            params,
            train,
            num_boost_round=self.cfg.n_estimators,
            evals=[(dvalid, "held_out")],
            early_stopping_rounds=self.cfg.early_stopping_rounds,
            verbose_eval=False,
        )
        self.rounds_ = int(booster.best_iteration) + 1
        return booster[: self.rounds_]

    def write_model(self, directory: Path) -> None:
        assert isinstance(self.predictor_, XGBoostPredictor)
        self.predictor_.save(directory, self.calibration_)


def fit_ridge(
    X: np.ndarray, y: np.ndarray, contract: Contract, alpha: float, origins: int, chunk: int = 65_536
) -> RidgePredictor:
    """Ridge on `linear_basis` of design rows X (origins x horizon rows) and scaled targets y
    (NaN: unobserved), with its residual quantiles per step at the contract's levels.

    The basis (~210 float32 columns, four times the design rows' width) is built `chunk` rows at
    a time and reduced to float64 sums and a Gram matrix, then a second pass scores the residuals,
    so memory is the design rows plus one chunk: a year of 15-minute SimBench profiles needed
    ~10 GB for the whole basis. Standardising (mean, std of each column) is applied to the
    accumulated moments, which is the same model as standardising the rows first."""
    from scipy.linalg import solve

    from fluxora.features.design import linear_basis

    names = contract.feature_names
    keep = np.flatnonzero(np.isfinite(y))
    n = len(keep)
    if n == 0:
        raise ValueError("no observed targets to fit ridge on")
    gram = zy = total = shift = None
    for start in range(0, n, chunk):
        rows = keep[start : start + chunk]
        block = np.asarray(linear_basis(X[rows], names), dtype="float64")
        if shift is None:  # moments about the first chunk's means: no cancellation when centring
            shift = block.mean(axis=0)
            width = block.shape[1]
            gram, zy, total = np.zeros((width, width)), np.zeros(width), np.zeros(width)
        block -= shift
        gram += block.T @ block
        zy += block.T @ y[rows]
        total += block.sum(axis=0)
    assert gram is not None and zy is not None and total is not None and shift is not None
    moved = total / n  # the columns' means about `shift`
    mean = shift + moved
    ymean = float(np.mean(y[keep]))
    centred = gram - n * np.outer(moved, moved)  # sum of (b - mean)(b - mean)^T
    zy = zy - n * moved * ymean  # sum of (b - mean) y, minus the part ymean carries
    std = np.sqrt(np.clip(np.diag(centred) / n, 0.0, None))
    std = np.where(std > 1e-9, std, 1.0)
    zgram = centred / np.outer(std, std)
    zzy = zy / std
    coef = solve(zgram + alpha * np.eye(len(std)), zzy, assume_a="pos")
    intercept = ymean  # the standardised columns have mean 0
    residual = np.full(len(y), np.nan)
    for start in range(0, n, chunk):
        rows = keep[start : start + chunk]
        block = np.asarray(linear_basis(X[rows], names), dtype="float64")
        residual[rows] = y[rows] - (((block - mean) / std) @ coef + intercept)
    levels = contract.quantiles
    return RidgePredictor(mean, std, coef, intercept, residual_quantiles(residual.reshape(origins, -1), levels))


class RidgeForecaster(JsonModelForecaster):
    """Ridge regression on `linear_basis` of the design rows (explicit interactions)."""

    name = "ridge"

    def fit_model(self, batch: OriginBatch) -> RidgeForecaster:
        X, y = _scaled_targets(batch, self.contract)
        self.predictor_ = fit_ridge(X, y, self.contract, self.cfg.ridge_alpha, len(batch))
        return self

    def model_json(self) -> str:
        assert isinstance(self.predictor_, RidgePredictor)
        return self.predictor_.to_json()


def ridge_coefficients(z: np.ndarray, y: np.ndarray, alpha: float, chunk: int = 65_536) -> tuple[np.ndarray, float]:
    """Ridge regression with an intercept (the solution of sklearn's `Ridge(alpha)`), from
    normal equations accumulated in float64 over row chunks. sklearn solves the float32 basis
    in float32, and when the interaction basis is ill-conditioned (one-hot blocks) its Cholesky
    step gives up and falls back to a full SVD: ~40 s instead of ~3 s on a year of hourly data."""
    from scipy.linalg import solve

    n, p = z.shape
    gram, zy, zsum = np.zeros((p, p)), np.zeros(p), np.zeros(p)
    for start in range(0, n, chunk):
        block = np.asarray(z[start : start + chunk], dtype="float64")
        gram += block.T @ block
        zy += block.T @ y[start : start + chunk]
        zsum += block.sum(axis=0)
    zmean, ymean = zsum / n, float(np.mean(y))
    gram -= n * np.outer(zmean, zmean)  # centred: the intercept is not penalised
    zy -= n * zmean * ymean
    coef = solve(gram + alpha * np.eye(p), zy, assume_a="pos")
    return coef, ymean - float(zmean @ coef)


class SeasonalNaiveForecaster(JsonModelForecaster):
    """Same hour yesterday (24) or last week (168); season 0 picks the better on training data.
    Quantiles: empirical residual distribution per step, relative to the series' weekly mean."""

    name = "seasonal_naive"
    calibrated = False  # fits nothing: its training residuals are already out of sample

    def __init__(self, contract: Contract, cfg: ModelConfig, season: int | None = None) -> None:
        super().__init__(contract, cfg)
        self.season = cfg.season_hours if season is None else season

    def fit_model(self, batch: OriginBatch) -> SeasonalNaiveForecaster:
        from fluxora.features.design import seasonal_naive

        h, res = batch.horizon, batch.resolution
        scale = np.nanmean(batch.load_history[:, -res.week :], axis=1)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)[:, None]
        residuals = {
            s: (batch.y - seasonal_naive(batch.load_history, h, s, res).reshape(-1, h)) / scale for s in (24, 168)
        }
        season = self.season or min((24, 168), key=lambda s: float(np.nanmean(np.abs(residuals[s]))))
        if season not in (24, 168):
            raise ConfigError(f"invalid configuration: model.season_hours: {season} (use 0, 24 or 168)")
        self.season_ = season
        self.predictor_ = NaivePredictor(season, residual_quantiles(residuals[season], self.contract.quantiles))
        return self

    def model_json(self) -> str:
        assert isinstance(self.predictor_, NaivePredictor)
        return self.predictor_.to_json()


class ProphetForecaster(JsonModelForecaster):
    """One Prophet model per series on the last `prophet_train_days`: daily/weekly/yearly
    seasonality, temperature plus heating/cooling degrees as regressors, country holidays.
    Fast settings: no MCMC and no uncertainty sampling (quantiles from in-sample residuals, then
    calibrated on held-out origins like every fitted family)."""

    name = "prophet"

    def fit_model(self, batch: OriginBatch) -> ProphetForecaster:
        import pandas as pd

        logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
        models: dict[str, Any] = {}
        resid: dict[str, np.ndarray] = {}
        steps = np.arange(1, batch.horizon + 1) * np.timedelta64(batch.resolution.step_ns, "ns")
        for sid in np.unique(batch.series.astype(str)):
            rows = np.flatnonzero(batch.series.astype(str) == sid)
            times = (batch.origins[rows, None] + steps[None, :]).reshape(-1)
            frame = pd.DataFrame(
                {"t": times, "y": batch.y[rows].reshape(-1), "temperature": batch.temp_actual[rows].reshape(-1)}
            )
            if not np.isfinite(frame["temperature"]).any():  # a load-only series: no regressor
                frame = frame.assign(temperature=np.nan).dropna(subset=["y"])
            else:
                frame = frame.dropna()
            frame = frame.drop_duplicates("t").sort_values("t")
            frame = frame[frame["t"] > frame["t"].max() - pd.Timedelta(days=self.cfg.prophet_train_days)]
            models[sid], resid[sid] = self._fit_one(frame)
        self.predictor_ = ProphetPredictor(models, resid)
        return self

    def _fit_one(self, frame: Any) -> tuple[Any, np.ndarray]:
        from prophet import Prophet

        from fluxora.features.design import local_ns

        c = self.contract
        local = local_ns(frame["t"].to_numpy().astype("int64"), c.timezone).astype("datetime64[ns]")
        df = frame.assign(ds=local)[["ds", "y", "temperature"]].reset_index(drop=True)
        with_weather = bool(np.isfinite(df["temperature"]).all())  # the frame of a load-only series is NaN
        model = Prophet(
            holidays=self._holidays(df["ds"]),
            yearly_seasonality=bool((df["ds"].max() - df["ds"].min()).days >= 300),
            weekly_seasonality=True,
            daily_seasonality=True,
            changepoint_prior_scale=self.cfg.prophet_changepoint_prior_scale,
            uncertainty_samples=0,
        )
        if with_weather:
            for name in ("temperature", "heating", "cooling"):
                model.add_regressor(name)
            df = _degree_terms(df, c)
        else:
            df = df.drop(columns=["temperature"])
        model.fit(df, iter=self.cfg.prophet_max_iter)
        fitted = model.predict(df)["yhat"].to_numpy()
        return model, np.quantile(df["y"].to_numpy() - fitted, c.quantiles)

    def _holidays(self, ds: Any) -> Any:
        import pandas as pd

        from fluxora.features.design import _holiday_days

        c = self.contract
        if not c.holiday_country:
            return None
        days: set[int] = set()
        for year in range(int(ds.min().year), int(ds.max().year) + 3):
            days |= _holiday_days(c.holiday_country, c.holiday_subdivision, year)
        stamps = np.array(sorted(days), dtype="int64").astype("datetime64[D]")
        return pd.DataFrame({"holiday": "public_holiday", "ds": pd.to_datetime(stamps)})

    def model_json(self) -> str:
        assert isinstance(self.predictor_, ProphetPredictor)
        return self.predictor_.to_json()


def _degree_terms(df: Any, contract: Contract) -> Any:
    t = df["temperature"]
    return df.assign(
        heating=(contract.heating_base_c - t).clip(lower=0.0), cooling=(t - contract.cooling_base_c).clip(lower=0.0)
    )


class NeuralForecaster(Forecaster):
    """One global Keras MLP across series (`fluxora.models.neural`), direct multi-horizon (the
    step is an input), on the ridge model's interaction basis of the design rows and loads scaled
    by each series' weekly mean; quantile levels from one network on pinball loss, never crossing.
    Saved as plain arrays (served by numpy) and as a `.keras` file; its training curve goes to
    `training_curve.json` (logged to MLflow with the model)."""

    name = "neural"

    def fit_model(self, batch: OriginBatch) -> NeuralForecaster:
        from fluxora.features.design import linear_basis
        from fluxora.models import neural

        c = self.cfg
        h = batch.horizon
        X, y = _scaled_targets(batch, self.contract)
        rng = np.random.default_rng(c.neural_seed)
        split = holdout_split(batch.origins, h, c.neural_validation_days, batch.resolution)
        fit_o, val_o = split if split is not None else (np.arange(len(batch)), np.zeros(0, dtype="int64"))

        def rows(origins: np.ndarray, limit: int) -> np.ndarray:
            r = (origins[:, None] * h + np.arange(h)[None, :]).reshape(-1)
            r = r[np.isfinite(y[r])]
            return np.sort(rng.choice(r, limit, replace=False)) if len(r) > limit else r

        fit_rows = rows(fit_o, c.neural_max_rows)
        val_rows = rows(val_o, max(1, c.neural_max_rows // 4))
        x = linear_basis(X[fit_rows], self.contract.feature_names)
        fill = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
        fill = np.where(np.isfinite(fill), fill, 0.0).astype("float32")
        x = np.where(np.isfinite(x), x, fill)
        x_val = None
        if len(val_rows):
            x_val = linear_basis(X[val_rows], self.contract.feature_names)
            x_val = np.where(np.isfinite(x_val), x_val, fill)
        # the median starts as ridge regression on the same (standardised) inputs
        mean, var = neural.standardisation(x)
        linear = ridge_coefficients((x - mean) / np.sqrt(var), y[fit_rows], c.ridge_alpha)
        trained = neural.train(x, y[fit_rows], x_val, y[val_rows], self.contract.quantiles, c, linear)
        self.keras_model_ = trained.model
        self.history_ = trained.history
        self.predictor_ = trained.predictor
        return self

    def write_model(self, directory: Path) -> None:
        from fluxora.models import neural

        assert isinstance(self.predictor_, NeuralPredictor)
        self.predictor_.save(directory)
        neural.save_keras(self.keras_model_, directory / KERAS_FILE)
        (directory / TRAINING_CURVE_FILE).write_text(json.dumps(self.history_))


def installed(names: list[str]) -> list[str]:
    """`names` without the candidates whose optional library is not installed (logged)."""
    import importlib.util

    kept = []
    for name in names:
        module = NEEDS.get(name)
        if module and importlib.util.find_spec(module) is None:
            logging.getLogger(__name__).warning("model %s skipped: %s is not installed", name, module)
            continue
        kept.append(name)
    return kept


def make_forecaster(name: str, cfg: FluxoraConfig, horizon: int, weather: str) -> Forecaster:
    """A fresh forecaster by name: a candidate (`CANDIDATES`) or a baseline (`BASELINES`)."""
    model = "seasonal_naive" if name.startswith("seasonal_naive") else name
    contract = make_contract(cfg, model, horizon, weather)
    if name == "seasonal_naive_daily":
        return SeasonalNaiveForecaster(contract, cfg.model, season=24)
    if name == "seasonal_naive_weekly":
        return SeasonalNaiveForecaster(contract, cfg.model, season=168)
    classes: dict[str, type[Forecaster]] = {
        "seasonal_naive": SeasonalNaiveForecaster,
        "ridge": RidgeForecaster,
        "xgboost": XGBoostForecaster,
        "prophet": ProphetForecaster,
        "neural": NeuralForecaster,
    }
    if name not in classes:
        raise ConfigError(f"invalid configuration: model.name: unknown model {name!r} (known: {list(CANDIDATES)})")
    if not installed([name]):
        raise ConfigError(f"model {name!r} needs {NEEDS[name]}, which is not installed (tensorflow-cpu)")
    return classes[name](contract, cfg.model)


def timed_fit(forecaster: Forecaster, batch: OriginBatch) -> float:
    """Fit and return the seconds it took."""
    started = time.perf_counter()
    forecaster.fit(batch)
    return time.perf_counter() - started
