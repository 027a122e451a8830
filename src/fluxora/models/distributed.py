"""The global XGBoost model fitted on a Dask cluster's workers with XGBoost's own Dask interface
(`infra=dask`, `steps.train._fit_final`).

The fit is `XGBoostForecaster.fit` spread over the cluster, step by step:
1. each work unit (`infra.series_per_task` series) reads its training rows through Feast
   (`features.store.training_set`) and builds its origin batch on a worker; the batches stay
   there as futures, only their sizes, time spans and temperature modes come back;
2. the design rows (finite targets only, scaled as in the serial fit) are built on the workers
   and handed to `xgboost.dask.DaskQuantileDMatrix` / `xgboost.dask.train` in place, so the
   flow's process never holds the training table;
3. calibration as in `Forecaster.fit`: the same hold-out cut (`calibration.holdout_bounds`) on
   every unit; the held-out fit weights the rows after the cut 0 (no copy of the table), each
   unit forecasts its own held-out origins with the broadcast boosters and returns its
   scores, and `conformal_table` runs on them here;
4. the quantile booster trains on `model.quantile_max_rows` rows drawn across the units in
   proportion to their sizes (the serial fit draws them from the whole table).

The boosters that come back are saved as today (native JSON, same contract, served by
`NativeForecaster`). XGBoost's distributed `hist` sums histograms across workers, so the trees
are close to, not bit-identical with, the serial fit's. `nthread` is left to XGBoost, which
gives each worker its own thread count.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fluxora.config import FluxoraConfig
from fluxora.errors import FeatureStoreError, InsufficientDataError
from fluxora.models.panel import OriginBatch, Panel

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unit:
    """One work unit: a group of series and their training origins. The worker reads the series'
    states through Feast and their loads from the validated table, so a unit carries no data."""

    home: Any  # fluxora.paths.Home (the offline store and the validated table are read on the worker)
    origins: dict[str, np.ndarray]
    resolution: Any  # fluxora.data.resolution.Resolution: the panel's step, checked on the worker
    service: str
    series_per_batch: int
    horizon: int
    lh: int
    lt: int
    weather: str
    noise_c: float
    seed: int


def fit_xgboost(
    client: Any, cfg: FluxoraConfig, home: Any, panel: Panel, origins: dict[str, np.ndarray], horizon: int, weather: str
) -> Any:
    """An `XGBoostForecaster` fitted on `origins` (series -> UTC stamps) by the cluster behind
    `client` (a `distributed.Client`), calibrated as the serial fit; ready to `save`."""
    # xgboost.dask looks the client up as the current one; Prefect's runner does not make its
    # client the default, so make it current for the length of the fit.
    with client.as_current():
        return _fit(client, cfg, home, panel, origins, horizon, weather)


def _fit(
    client: Any, cfg: FluxoraConfig, home: Any, panel: Panel, origins: dict[str, np.ndarray], horizon: int, weather: str
) -> Any:
    from fluxora.fanout import chunks
    from fluxora.models.calibration import conformal_table, holdout_bounds
    from fluxora.models.forecasters import (
        XGBoostForecaster,
        make_forecaster,
        point_params,
        spread_params,
        with_temperature_mode,
    )

    fc, res, c = cfg.features, panel.resolution, cfg.model
    model = make_forecaster("xgboost", cfg, horizon, weather)
    assert isinstance(model, XGBoostForecaster)
    ids = sorted(sid for sid, t in origins.items() if len(t))
    workers = len(client.nthreads())
    units = [
        Unit(
            home,
            {sid: origins[sid] for sid in group},
            res,
            fc.feature_service,
            fc.series_per_batch,
            horizon,
            res.steps(fc.load_history_hours),
            res.steps(fc.temp_history_hours),
            weather,
            cfg.backtest.weather_noise_c,
            cfg.backtest.seed + i,  # `forecast` weather: seeded noise per unit
        )
        for i, group in enumerate(chunks(ids, unit_size(len(ids), cfg.infra.series_per_task, workers)))
    ]
    batches = client.map(_read, units, pure=False)
    stats = [s for s in client.gather(client.map(_batch_stats, batches, pure=False)) if s is not None]
    if not stats:
        raise InsufficientDataError("the feature store returned no rows for the training origins")
    modes = {s["temperature"] for s in stats}
    model.contract = with_temperature_mode(model.contract, modes.pop() if len(modes) == 1 else "optional")
    model.contract = replace(model.contract, resolution=res.name)
    bounds = None
    if c.calibration_days > 0:
        first, last = min(s["first"] for s in stats), max(s["last"] for s in stats)
        bounds = holdout_bounds(first, last, horizon, c.calibration_days)
    parts = client.map(_design, batches, contract=model.contract, bounds=bounds, pure=False)
    del batches  # each unit's batch lives on in its part (held-out origins) or is released
    sizes = client.gather(client.map(_part_sizes, parts, pure=False))
    n_fit, n_held = sum(s[1] for s in sizes), sum(s[2] for s in sizes)

    point, spread = _dask_params(point_params(c)), _dask_params(spread_params(c, model.contract.quantiles))
    rounds = c.n_estimators  # the cap; early stopping on the held-out origins may choose fewer
    if bounds is not None and n_fit and n_held:
        held_point = _train(client, point, parts, sizes, "fit", c.n_estimators, c.early_stopping_rounds)
        if c.early_stopping_rounds > 0:  # as the serial fit: the refit grows the trees the held-out origins chose
            rounds = int(held_point.best_iteration) + 1
            held_point = held_point[:rounds]
        held_spread = _train_sample(
            client, spread, parts, sizes, "fit", c.quantile_max_rows, c.seed, c.quantile_estimators
        )
        per_unit = max(1, -(-c.quantile_max_rows // max(1, len(sizes))))  # held-out origins scored per unit, at most
        boosters = client.scatter((held_point, held_spread), broadcast=True)
        scored = [
            s
            for s in client.gather(
                client.map(_held_scores, parts, boosters=boosters, contract=model.contract, cap=per_unit, pure=False)
            )
            if s is not None
        ]
        y = np.concatenate([s[0] for s in scored])
        quantiles = np.concatenate([s[1] for s in scored], axis=1)
        scale = np.concatenate([s[2] for s in scored])
        model.calibration_ = conformal_table(y, quantiles, model.contract.quantiles, scale)
    else:
        model.calibration_ = None
    model.booster_ = _train(client, point, parts, sizes, "all", rounds)
    model.quantile_booster_ = _train_sample(
        client, spread, parts, sizes, "all", c.quantile_max_rows, c.seed, c.quantile_estimators
    )
    from fluxora.models.native import XGBoostPredictor

    model.predictor_ = XGBoostPredictor(model.booster_, model.quantile_booster_, model.calibration_)
    _log.info(
        "xgboost.dask: %d design rows (%d before the hold-out cut) from %d units on %d workers",
        sum(s[0] for s in sizes),
        n_fit,
        len(sizes),
        len(client.nthreads()),
    )
    return model


def unit_size(n_series: int, series_per_task: int, workers: int) -> int:
    """Series per unit: `infra.series_per_task`, smaller when that would leave a worker without
    rows (each worker trains on the units it holds)."""
    return max(1, min(series_per_task, -(-n_series // max(1, workers))))


def _dask_params(params: dict[str, Any]) -> dict[str, Any]:
    """The serial parameters without `nthread`: xgboost.dask sets it to each worker's threads."""
    return {k: v for k, v in params.items() if k != "nthread"}


# --- on the workers -------------------------------------------------------------------------


def _read(unit: Unit) -> OriginBatch | None:
    """The unit's origin batch, read through Feast point in time (None: no stored state)."""
    from fluxora.features.store import training_set
    from fluxora.models.panel import batch_from_features, concat_batches

    try:
        panel = _panel(unit)
        frames = training_set(unit.home, unit.origins, unit.service, unit.series_per_batch)
        batches = [batch_from_features(f, panel, unit.horizon, unit.lh, unit.lt) for f in frames]
    except InsufficientDataError:
        return None
    return concat_batches(batches).with_weather(unit.weather, unit.noise_c, unit.seed)


def _panel(unit: Unit) -> Panel:
    """The unit's series from the validated table (only the row groups that hold them are read);
    issued forecasts come from Feast, as in the serial fit's training set."""
    import pyarrow.parquet as pq

    from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP

    ids = sorted(unit.origins)
    table = pq.read_table(
        unit.home.validated_data, columns=[SERIES_ID, TIMESTAMP, LOAD, TEMPERATURE], filters=[(SERIES_ID, "in", ids)]
    )
    frame = table.to_pandas()
    home = unit.home.validated_data
    if missing := sorted(set(ids) - set(frame[SERIES_ID].astype(str))):
        raise FeatureStoreError(
            f"the validated table at {home} lacks {len(missing)} of this unit's {len(ids)} series "
            f"(e.g. {missing[0]!r}): workers need the flow's FLUXORA_HOME"
        )
    panel = Panel.from_frames([frame])
    if panel.resolution != unit.resolution and any(len(s.load) > 1 for s in panel.series.values()):
        raise FeatureStoreError(
            f"the validated table at {home} is at {panel.resolution.name}, the flow trained at "
            f"{unit.resolution.name}: workers need the flow's FLUXORA_HOME"
        )
    return panel


def _batch_stats(batch: OriginBatch | None) -> dict[str, Any] | None:
    from fluxora.models.forecasters import temperature_mode

    if batch is None:
        return None
    return {
        "first": batch.origins.min(),
        "last": batch.origins.max(),
        "temperature": temperature_mode(batch.temp_history),
    }


@dataclass
class Part:
    """A unit's design rows (finite targets only) with their weights, and its held-out origins."""

    X: np.ndarray
    y: np.ndarray
    fit: np.ndarray  # float32 weights: 1 for rows of origins before the hold-out cut, else 0
    held: OriginBatch | None


def _design(batch: OriginBatch | None, contract: Any, bounds: tuple[Any, Any] | None) -> Part | None:
    from fluxora.models.forecasters import _scaled_targets

    if batch is None:
        return None
    X, y = _scaled_targets(batch, contract)
    keep = np.flatnonzero(np.isfinite(y))
    held = None
    fit_origin = np.ones(len(batch), dtype=bool)
    if bounds is not None:
        fit_origin = batch.origins <= bounds[0]
        held_rows = np.flatnonzero(batch.origins > bounds[1])
        # as `Forecaster.fit`: only series the held-out fit saw are scored
        held_rows = held_rows[np.isin(batch.series[held_rows], batch.series[fit_origin])]
        held = batch.take(held_rows) if held_rows.size else None
    fit = np.repeat(fit_origin, batch.horizon)[keep].astype("float32")
    return Part(np.ascontiguousarray(X[keep]), y[keep].astype("float32"), fit, held)


def _part_sizes(part: Part | None) -> tuple[int, int, int]:
    """(rows, rows before the cut, held-out origins)."""
    if part is None:
        return 0, 0, 0
    return len(part.y), int(part.fit.sum()), 0 if part.held is None else len(part.held)


def _sample(part: Part | None, which: str, k: int, seed: int) -> Part | None:
    """`k` rows of the part drawn without replacement (from those before the cut for `fit`)."""
    if part is None:
        return None
    rows = np.flatnonzero(part.fit > 0) if which == "fit" else np.arange(len(part.y))
    rows = np.sort(np.random.default_rng(seed).choice(rows, min(k, len(rows)), replace=False))
    return Part(part.X[rows], part.y[rows], np.ones(len(rows), dtype="float32"), None)


def _held_scores(
    part: Part | None, boosters: tuple[Any, Any], contract: Any, cap: int
) -> tuple[np.ndarray, ...] | None:
    """(y, quantiles (L, n, H), weekly scale) of at most `cap` held-out origins, forecast by
    the held-out fit's boosters through the serving path."""
    from fluxora.models.native import NativeForecaster, XGBoostPredictor, week_scale

    if part is None or part.held is None:
        return None
    held = part.held
    if len(held) > cap:
        held = held.take(np.sort(np.random.default_rng(0).choice(len(held), cap, replace=False)))
    raw = NativeForecaster(XGBoostPredictor(*boosters), contract).forecast_all(held.state(), held.origins, held.horizon)
    quantiles = np.stack([raw.quantiles[level] for level in contract.quantiles])
    return held.y, quantiles, week_scale(held.load_history, contract.step.week)


# --- training through xgboost.dask --------------------------------------------------------


def _train(
    client: Any,
    params: dict[str, Any],
    parts: list[Any],
    sizes: list[tuple[int, int, int]],
    which: str,
    rounds: int,
    early_stopping_rounds: int = 0,
) -> Any:
    """A booster trained by `xgboost.dask.train` on the parts' rows (`fit`: weighted by the cut;
    with `early_stopping_rounds`, stopped when the held-out rows' error, the rows the cut weights
    0, has not improved for that many rounds)."""
    import dask.array as da
    from xgboost import dask as dxgb

    present = [(p, s[0]) for p, s in zip(parts, sizes, strict=True) if s[0]]
    n_features = client.submit(lambda p: p.X.shape[1], present[0][0]).result()

    def column(attr: str, n: int, part: Any, two_d: bool) -> Any:
        shape = (n, n_features) if two_d else (n,)
        return da.from_delayed(client.submit(operator.attrgetter(attr), part), shape=shape, dtype="float32")

    X = da.concatenate([column("X", n, p, True) for p, n in present])
    y = da.concatenate([column("y", n, p, False) for p, n in present])
    weight = da.concatenate([column("fit", n, p, False) for p, n in present]) if which == "fit" else None
    dtrain = dxgb.DaskQuantileDMatrix(client, X, y, weight=weight)
    if weight is None or early_stopping_rounds <= 0:
        return dxgb.train(client, params, dtrain, num_boost_round=rounds)["booster"]
    held = dxgb.DaskDMatrix(client, X, y, weight=1.0 - weight)  # only the held-out rows count
    out = dxgb.train(
        client,
        params,
        dtrain,
        num_boost_round=rounds,
        evals=[(held, "held_out")],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )
    return out["booster"]


def _train_sample(
    client: Any,
    params: dict[str, Any],
    parts: list[Any],
    sizes: list[tuple[int, int, int]],
    which: str,
    max_rows: int,
    seed: int,
    rounds: int,
) -> Any:
    """A booster trained on at most `max_rows` rows drawn across the parts in proportion to their size."""
    counts = np.array([s[1] if which == "fit" else s[0] for s in sizes])
    share = min(1.0, max_rows / max(1, counts.sum()))
    ks = np.minimum(counts, np.ceil(counts * share).astype(int))
    sampled = [
        client.submit(_sample, p, which, int(k), seed + i) for i, (p, k) in enumerate(zip(parts, ks, strict=True))
    ]
    return _train(client, params, sampled, [(int(k), int(k), 0) for k in ks], "all", rounds)
