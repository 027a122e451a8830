"""Forecasting service logic: model store, native forecaster, design matrix, online features.

Design-matrix expectations are computed by hand from histories whose values identify their
own time, so an off-by-one or a look past the origin shows up as a wrong number.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fluxora import registry
from fluxora import servicedb as db
from fluxora.api.model_store import ModelStore
from fluxora.api.online import OnlineFeatures, OnlineStates
from fluxora.api.rendering import SERVED_DECIMALS
from fluxora.api.settings import ServiceSettings
from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.errors import FeatureStoreError, RegistryError
from fluxora.features import store as fs
from fluxora.features.design import Design, design_matrix, seasonal_naive
from fluxora.features.names import EVENT_TIMESTAMP, FEATURE_NAMES, FEATURE_SETS, LOAD_HISTORY, TEMP_HISTORY
from fluxora.models.forecasters import make_forecaster
from fluxora.models.native import CONTRACT_FILE, STATE_INPUTS, NativeForecaster
from fluxora.models.panel import OriginBatch
from fluxora.paths import Home
from fluxora.servicedb.history import ModelEventLog

# Served values are rounded to SERVED_DECIMALS: equal to the model's within half a unit there.
SERVED_ATOL = 0.5 * 10**-SERVED_DECIMALS + 1e-9
HOUR = pd.Timedelta(hours=1)
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
HEAT, COOL = 15.0, 22.0
ORIGINS = pd.DatetimeIndex(["2024-03-10 05:00", "2024-07-01 23:00"])  # UTC, naive


def _fc(
    forecaster: NativeForecaster, load: np.ndarray, temp: np.ndarray, origins: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """(times, point forecasts) through the state-mapping interface."""
    result = forecaster.forecast({LOAD_HISTORY: load, TEMP_HISTORY: temp}, origins, horizon)
    return result.times, result.point


def _histories(lh: int = 168, lt: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Two origins. load[k, i] = 1000 (k + 1) + i and temp[k, i] = 100 k + i: each value names its index."""
    load = np.stack([1000.0 * (k + 1) + np.arange(lh) for k in range(len(ORIGINS))])
    temp = np.stack([100.0 * k + np.arange(lt, dtype="float64") for k in range(len(ORIGINS))])
    return load, temp


def _design(load: np.ndarray, temp: np.ndarray, horizon: int) -> Design:
    return design_matrix(load, temp, ORIGINS.to_numpy(), horizon, HEAT, COOL)


def _by_time(values: np.ndarray, origin: pd.Timestamp) -> pd.Series:
    """History as a time series: the last value is observed at the origin."""
    return pd.Series(values, index=origin - HOUR * np.arange(len(values))[::-1])


# --- ModelStore -------------------------------------------------------------------------------


def test_model_store_loads_registry_champion(tiny_cfg: FluxoraConfig, trained_home: Home) -> None:
    champion = registry.champion(trained_home, tiny_cfg.train.registered_model_name)
    assert champion is not None
    store = ModelStore(ServiceSettings.from_config(tiny_cfg, trained_home))
    assert store.current is None
    loaded = store.load_champion()
    contract = loaded.forecaster.contract
    assert loaded.version == champion["version"]
    assert store.current is loaded
    assert store.last_error is None
    assert contract.horizon == tiny_cfg.train.horizon
    assert contract.load_history_hours == tiny_cfg.features.load_history_hours
    assert contract.feature_service == tiny_cfg.features.feature_service


def test_model_history_database_failure_does_not_stop_loading(
    tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Recording is bookkeeping: with a database that has no model_events table (never migrated),
    the champion still loads and serves, and the event is kept in memory."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}")
    store = ModelStore(ServiceSettings.from_config(tiny_cfg, trained_home), recorder=ModelEventLog(engine).record)
    with caplog.at_level("WARNING", logger="fluxora.api"):
        loaded = store.load_champion()
    engine.dispose()
    assert store.current is loaded and store.last_error is None
    assert [(e.version, e.event) for e in store.history] == [(loaded.version, "served")]
    assert "could not record model event served" in caplog.text


def test_model_store_records_every_event_it_keeps(tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'api.db'}")
    db.migrate(engine)
    events = ModelEventLog(engine)
    store = ModelStore(ServiceSettings.from_config(tiny_cfg, trained_home), recorder=events.record)
    store.load_champion()
    store.load_last_known_good()
    stored = events.latest(10)
    engine.dispose()
    assert stored == store.history
    assert [e.source for e in stored] == ["registry", "last-known-good"]


def test_model_store_with_empty_registry_raises_and_stays_empty(tmp_path: Path) -> None:
    store = ModelStore(ServiceSettings(home=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"))
    with pytest.raises(RegistryError, match="champion"):
        store.load_champion()
    assert store.current is None
    assert store.last_error is not None


# --- NativeForecaster -------------------------------------------------------------------------


@pytest.fixture
def model_copy(champion_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(champion_dir, tmp_path / "model"))


def test_native_round_trip_reproduces_fitted_model(tiny_cfg: FluxoraConfig, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, horizon = 40, 6
    load = 100 + 20 * rng.random((n, 168))
    temp = 10 + 5 * rng.random((n, 24))
    origins = np.datetime64("2024-01-01T00", "ns") + np.arange(n) * np.timedelta64(1, "h")
    batch = OriginBatch(
        np.full(n, "s", dtype=object), origins, load, temp, 100 + 10 * rng.random((n, horizon)), temp[:, :horizon]
    )
    cfg = replace(tiny_cfg, model=replace(tiny_cfg.model, n_estimators=8, quantile_estimators=4, n_jobs=1))
    model = make_forecaster("xgboost", cfg, horizon, "persistence").fit(batch)
    model.save(tmp_path)

    loaded = NativeForecaster.load(tmp_path)
    assert loaded.contract == model.contract
    times, values = _fc(loaded, load, temp, origins, horizon)
    assert times.shape == values.shape == (n, horizon)
    c = model.contract
    design = design_matrix(load, temp, origins, horizon, HEAT, COOL, calendar=c.calendar, features=c.feature_names)
    expected = model.booster_.inplace_predict(design.X) * design.scale
    np.testing.assert_allclose(values.reshape(-1), expected, rtol=1e-6)
    np.testing.assert_array_equal(times.reshape(-1), design.target_times)


def test_native_loads_registered_champion(champion_dir: Path, tiny_cfg: FluxoraConfig) -> None:
    forecaster = NativeForecaster.load(champion_dir)
    assert forecaster.contract.horizon == tiny_cfg.train.horizon
    assert forecaster.contract.feature_names == FEATURE_SETS[tiny_cfg.features.feature_service]  # the default service
    load, temp = _histories()
    _, values = _fc(forecaster, load, temp, ORIGINS.to_numpy(), tiny_cfg.train.horizon)
    assert np.isfinite(values).all()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"version": 99}, "contract version"),
        ({"version": None}, "contract version"),
        ({"feature_names": list(reversed(FEATURE_NAMES))}, "different feature set"),
        ({"feature_names": list(FEATURE_NAMES[:-1])}, "different feature set"),
        ({"feature_names": [*FEATURE_NAMES, "holiday"]}, "different feature set"),
    ],
)
def test_contract_mismatch_is_refused(model_copy: Path, edit: dict[str, object], message: str) -> None:
    path = model_copy / CONTRACT_FILE
    path.write_text(json.dumps(json.loads(path.read_text()) | edit))
    with pytest.raises(ValueError, match=message):
        NativeForecaster.load(model_copy)


def test_forecast_horizon_outside_contract_is_refused(champion_dir: Path) -> None:
    forecaster = NativeForecaster.load(champion_dir)
    load, temp = _histories()
    origins = ORIGINS.to_numpy()
    for horizon in (0, -1, forecaster.contract.horizon + 1):
        with pytest.raises(ValueError, match="horizon"):
            _fc(forecaster, load, temp, origins, horizon)
    for horizon in (1, forecaster.contract.horizon):
        _, values = _fc(forecaster, load, temp, origins, horizon)
        assert values.shape == (len(ORIGINS), horizon)


# --- design matrix ----------------------------------------------------------------------------


def test_design_shape_order_and_target_times() -> None:
    load, temp = _histories()
    horizon = 30
    design = _design(load, temp, horizon)
    n = len(ORIGINS)
    assert design.X.shape == (n * horizon, len(FEATURE_NAMES))
    assert design.scale.shape == design.target_times.shape == (n * horizon,)
    expected = [o + s * HOUR for o in ORIGINS for s in range(1, horizon + 1)]  # origin-major
    np.testing.assert_array_equal(design.target_times, pd.DatetimeIndex(expected).to_numpy())
    np.testing.assert_array_equal(design.X[:, COL["step"]], np.tile(np.arange(1, horizon + 1), n))
    np.testing.assert_allclose(design.scale, np.repeat(load[:, -168:].mean(axis=1), horizon))


@pytest.mark.parametrize("horizon", [1, 23, 24, 25, 48, 49, 168])
def test_lags_and_calendar_by_hand(horizon: int) -> None:
    load, temp = _histories()
    design = _design(load, temp, horizon)
    for k, origin in enumerate(ORIGINS):
        load_at, temp_at = _by_time(load[k], origin), _by_time(temp[k], origin)
        scale = load[k, -168:].mean()
        for step in range(1, horizon + 1):
            row = design.X[k * horizon + step - 1]
            target = origin + step * HOUR
            yesterday = target - 24 * math.ceil(step / 24) * HOUR  # latest observed same hour
            assert yesterday <= origin
            assert row[COL["lag_same_hour_day"]] == pytest.approx(load_at[yesterday] / scale, rel=1e-6)
            assert row[COL["lag_same_hour_week"]] == pytest.approx(load_at[target - 168 * HOUR] / scale, rel=1e-6)
            assert row[COL["temp_same_hour_day"]] == pytest.approx(temp_at[yesterday], rel=1e-6)
            assert row[COL["heating_degrees"]] == pytest.approx(max(HEAT - temp_at[yesterday], 0.0), abs=1e-5)
            assert row[COL["cooling_degrees"]] == pytest.approx(max(temp_at[yesterday] - COOL, 0.0), abs=1e-5)
            assert row[COL["hour"]] == target.hour
            assert row[COL["dayofweek"]] == target.dayofweek
            assert row[COL["load_last"]] == pytest.approx(load_at[origin] / scale, rel=1e-6)
            assert row[COL["load_mean_24h"]] == pytest.approx(load[k, -24:].mean() / scale, rel=1e-6)
            assert row[COL["log_scale"]] == pytest.approx(math.log(scale), rel=1e-6)
            assert row[COL["temp_mean_24h"]] == pytest.approx(temp[k, -24:].mean(), rel=1e-6)


def test_lag_sources_are_never_after_origin() -> None:
    load, temp = _histories()
    horizon = 168
    design = _design(load, temp, horizon)
    lh, lt = load.shape[1], temp.shape[1]
    for k in range(len(ORIGINS)):
        rows = slice(k * horizon, (k + 1) * horizon)
        scale = design.scale[rows]
        # Values name their own history index; index lh-1 is the origin.
        for name, base, width, unscale in (
            ("lag_same_hour_day", 1000.0 * (k + 1), lh, scale),
            ("lag_same_hour_week", 1000.0 * (k + 1), lh, scale),
            ("temp_same_hour_day", 100.0 * k, lt, 1.0),
        ):
            idx = np.rint(design.X[rows, COL[name]].astype("float64") * unscale - base).astype(int)
            assert (idx >= 0).all(), name
            assert (idx <= width - 1).all(), name
            hours_back = (width - 1 - idx) + np.arange(1, horizon + 1)  # from target to source
            assert (hours_back % 24 == 0).all(), name  # same hour of day as the target


def test_changing_the_origin_value_moves_only_origin_dependent_columns() -> None:
    load, temp = _histories()
    horizon = 168
    base = _design(load, temp, horizon)
    bumped_load = load.copy()
    bumped_load[:, -1] += 500.0
    moved = _design(bumped_load, temp, horizon)
    steps = np.tile(np.arange(1, horizon + 1), len(ORIGINS))

    def raw(design: Design, name: str) -> np.ndarray:
        return design.X[:, COL[name]].astype("float64") * design.scale

    day_changed = ~np.isclose(raw(base, "lag_same_hour_day"), raw(moved, "lag_same_hour_day"))
    np.testing.assert_array_equal(day_changed, steps % 24 == 0)  # only steps whose same hour is the origin
    week_changed = ~np.isclose(raw(base, "lag_same_hour_week"), raw(moved, "lag_same_hour_week"))
    np.testing.assert_array_equal(week_changed, steps == 168)
    assert (~np.isclose(raw(base, "load_last"), raw(moved, "load_last"))).all()
    for name in (
        "step",
        "hour",
        "dayofweek",
        "doy_sin",
        "doy_cos",
        "temp_same_hour_day",
        "temp_mean_24h",
        "heating_degrees",
        "cooling_degrees",
    ):
        np.testing.assert_array_equal(base.X[:, COL[name]], moved.X[:, COL[name]], err_msg=name)
    np.testing.assert_array_equal(base.target_times, moved.target_times)


@pytest.mark.parametrize(
    ("horizon", "message"),
    [(0, "horizon"), (169, "horizon")],
)
def test_design_rejects_bad_horizon(horizon: int, message: str) -> None:
    load, temp = _histories()
    with pytest.raises(ValueError, match=message):
        _design(load, temp, horizon)


def test_design_rejects_short_histories() -> None:
    load, temp = _histories()
    with pytest.raises(ValueError, match="history"):
        _design(load[:, 1:], temp, 24)
    with pytest.raises(ValueError, match="history"):
        _design(load, temp[:, 1:], 24)


def test_seasonal_naive_by_hand() -> None:
    load, _ = _histories()  # row k: 1000 (k + 1) + index, index 167 at the origin
    horizon = 30
    daily = seasonal_naive(load, horizon, 24)
    # steps 1..24 -> indices 144..167; steps 25..30 -> indices 144..149 (two days back)
    by_hand = np.r_[np.arange(144, 168), np.arange(144, 150)].astype("float64")
    np.testing.assert_array_equal(daily, np.r_[1000 + by_hand, 2000 + by_hand])
    weekly = seasonal_naive(load, horizon, 168)
    by_hand = np.arange(0, 30, dtype="float64")  # step s -> index s - 1
    np.testing.assert_array_equal(weekly, np.r_[1000 + by_hand, 2000 + by_hand])


def test_seasonal_naive_agrees_with_design_lags() -> None:
    load, temp = _histories()
    design = _design(load, temp, 168)
    for season, name in ((24, "lag_same_hour_day"), (168, "lag_same_hour_week")):
        lag = design.X[:, COL[name]].astype("float64") * design.scale
        np.testing.assert_allclose(seasonal_naive(load, 168, season), lag, rtol=1e-6)


@pytest.mark.parametrize("season", [0, 12, 48, 167])
def test_seasonal_naive_rejects_other_seasons(season: int) -> None:
    load, _ = _histories()
    with pytest.raises(ValueError, match="season"):
        seasonal_naive(load, 24, season)


# --- offline state and online features --------------------------------------------------------


@pytest.fixture(scope="module")
def online(tiny_cfg: FluxoraConfig, trained_home: Home) -> OnlineFeatures:
    return OnlineFeatures(trained_home)


def test_offline_state_ends_at_its_origin(tiny_cfg: FluxoraConfig, trained_home: Home) -> None:
    # Leakage guard on the stored features: the row stamped t holds data up to t, never after.
    data = io.read_parquet(trained_home.validated_data)
    table = pq.read_table(fs.offline_path(trained_home)).to_pandas()
    lh, lt = tiny_cfg.features.load_history_hours, tiny_cfg.features.temp_history_hours
    for sid, group in data.groupby(SERIES_ID):
        group = group.set_index(TIMESTAMP).sort_index()
        rows = table[table[SERIES_ID] == sid].sort_values(EVENT_TIMESTAMP)
        for _, row in rows.iloc[[0, len(rows) // 2, -1]].iterrows():
            t = row[EVENT_TIMESTAMP]
            expected_load = group.loc[t - (lh - 1) * HOUR : t, LOAD].to_numpy(dtype="float32")
            expected_temp = group.loc[t - (lt - 1) * HOUR : t, TEMPERATURE].to_numpy(dtype="float32")
            np.testing.assert_array_equal(np.asarray(row[LOAD_HISTORY], dtype="float32"), expected_load)
            np.testing.assert_array_equal(np.asarray(row[TEMP_HISTORY], dtype="float32"), expected_temp)


def _states(reader: OnlineFeatures, cfg: FluxoraConfig, series: list[str]) -> OnlineStates:
    return reader.states(series, cfg.features.feature_service, STATE_INPUTS)


def test_online_states_known_series(online: OnlineFeatures, tiny_cfg: FluxoraConfig, trained_home: Home) -> None:
    latest = fs.offline_latest(trained_home)
    table = pq.read_table(fs.offline_path(trained_home)).to_pandas()
    series = list(latest[SERIES_ID])
    states = _states(online, tiny_cfg, series)
    assert states.series_ids == series and states.missing == []
    assert states.features[LOAD_HISTORY].shape == (len(series), tiny_cfg.features.load_history_hours)
    assert states.features[TEMP_HISTORY].shape == (len(series), tiny_cfg.features.temp_history_hours)
    for i, (sid, origin) in enumerate(zip(series, latest[EVENT_TIMESTAMP], strict=True)):
        assert pd.Timestamp(states.origins[i], tz="UTC") == origin
        row = table[(table[SERIES_ID] == sid) & (table[EVENT_TIMESTAMP] == origin)].iloc[0]
        np.testing.assert_array_equal(states.features[LOAD_HISTORY][i], np.asarray(row[LOAD_HISTORY], dtype="float64"))
        np.testing.assert_array_equal(states.features[TEMP_HISTORY][i], np.asarray(row[TEMP_HISTORY], dtype="float64"))


def test_online_states_report_unknown_series(online: OnlineFeatures, tiny_cfg: FluxoraConfig) -> None:
    states = _states(online, tiny_cfg, ["no_such_series", "series_000"])
    assert states.series_ids == ["series_000"]
    assert states.missing == ["no_such_series"]
    assert len(states.origins) == 1 and states.features[LOAD_HISTORY].shape[0] == 1


def test_online_without_applied_store_raises(tmp_path: Path, tiny_cfg: FluxoraConfig) -> None:
    reader = OnlineFeatures(Home(tmp_path))
    with pytest.raises(FeatureStoreError):
        _states(reader, tiny_cfg, ["series_000"])


def test_forecast_refuses_quantiles_the_model_lacks(champion_dir: Path) -> None:
    forecaster = NativeForecaster.load(champion_dir)
    load, temp = _histories()
    with pytest.raises(ValueError, match="quantiles"):
        forecaster.forecast({LOAD_HISTORY: load, TEMP_HISTORY: temp}, ORIGINS.to_numpy(), 3, quantiles=(0.33,))
    with pytest.raises(ValueError, match="missing state"):
        forecaster.forecast({LOAD_HISTORY: load}, ORIGINS.to_numpy(), 3)


# --- model store: last-known-good, refusal, hot swap --------------------------------------------

DEAD_REGISTRY = "http://127.0.0.1:9"  # nothing listens on the discard port: connection refused at once


@pytest.fixture
def fast_fail_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")


@pytest.fixture
def own_registry(tmp_path: Path, trained_home: Home) -> tuple[str, Home]:
    """A private copy of the session registry (artifacts shared read-only) and a service home
    that reads the session's online store, so aliases can move without touching other tests."""
    db = tmp_path / "registry" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(trained_home.mlflow_db, db)
    home = Home(tmp_path / "home")
    home.root.mkdir()
    (home.root / "feast").symlink_to(trained_home.feast_repo, target_is_directory=True)
    return f"sqlite:///{db}", home


def _client(uri: str) -> object:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _register(uri: str, name: str, source: Path) -> str:
    """A new registered version from a plain model folder; the alias is not moved."""
    return str(_client(uri).create_model_version(name, source=str(source)).version)  # type: ignore[attr-defined]


def _promote(uri: str, name: str, version: str) -> None:
    _client(uri).set_registered_model_alias(name, "champion", version)  # type: ignore[attr-defined]


def _other_model(champion_dir: Path, target: Path, tiny_cfg: FluxoraConfig) -> Path:
    """A genuinely different model under the champion's contract: its point booster's base
    score is moved, so every forecast changes while the files stay valid XGBoost JSON."""
    import shutil

    shutil.copytree(champion_dir, target)
    path = target / "model.json"
    raw = json.loads(path.read_text())
    params = raw["learner"]["learner_model_param"]
    params["base_score"] = "[2.5E0]" if params["base_score"] != "[2.5E0]" else "[3.5E0]"
    path.write_text(json.dumps(raw))
    return target


def _store(tiny_cfg: FluxoraConfig, home: Home, uri: str, **update: object) -> ModelStore:
    base = ServiceSettings.from_config(tiny_cfg, home)
    return ModelStore(base.model_copy(update={"tracking_uri": uri, "poll_interval_s": 0.0, **update}))


def test_registry_down_at_start_serves_last_known_good(
    tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path, fast_fail_registry: None
) -> None:
    home = Home(tmp_path)
    first = _store(tiny_cfg, home, trained_home.mlflow_tracking_uri).load_champion()
    assert first.source == "registry"
    record = json.loads((tmp_path / "serving" / "last_known_good.json").read_text())
    assert record["version"] == first.version and len(record["sha256"]) == 64

    store = _store(tiny_cfg, home, DEAD_REGISTRY)
    loaded = store.load_champion()
    assert loaded.source == "last-known-good"
    assert loaded.version == first.version
    assert store.current is loaded
    load, temp = _histories()
    np.testing.assert_array_equal(
        _fc(loaded.forecaster, load, temp, ORIGINS.to_numpy(), 6)[1],
        _fc(first.forecaster, load, temp, ORIGINS.to_numpy(), 6)[1],
    )
    with pytest.raises(RegistryError):  # a poll against the dead registry changes nothing
        store.refresh()
    assert store.current is loaded


def test_tampered_last_known_good_is_refused(
    tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path: Path, fast_fail_registry: None
) -> None:
    home = Home(tmp_path)
    _store(tiny_cfg, home, trained_home.mlflow_tracking_uri).load_champion()
    record = json.loads((tmp_path / "serving" / "last_known_good.json").read_text())
    model_file = Path(record["path"]) / "model.json"
    model_file.write_bytes(model_file.read_bytes().replace(b"1", b"2", 1))  # still valid JSON, other numbers

    store = _store(tiny_cfg, home, DEAD_REGISTRY)
    with pytest.raises(RegistryError, match="checksum"):
        store.load_champion()
    assert store.current is None
    assert store.history[-1].event == "refused"


def test_app_with_dead_registry_and_no_copy_is_503_not_500(
    tiny_cfg: FluxoraConfig, tmp_path: Path, fast_fail_registry: None
) -> None:
    from fastapi.testclient import TestClient
    from serving_support import key_headers, settings_for

    from fluxora.api.app import create_app

    app = create_app(settings_for(tiny_cfg, Home(tmp_path), tracking_uri=DEAD_REGISTRY, retry_after_s=11))
    with TestClient(app) as c:
        headers = key_headers(app)
        assert c.get("/health/ready").status_code == 503
        for r in (
            c.get("/v1/forecast", params={"series_id": "series_000"}, headers=headers),
            c.post("/v1/forecast", json={"series_ids": ["series_000"]}, headers=headers),
            c.get("/v1/models/current", headers=headers),
        ):
            assert r.status_code == 503
            assert r.headers["Retry-After"] == "11"


@pytest.mark.parametrize("damage", ["truncated model", "contract from the future", "fails smoke prediction"])
def test_bad_version_is_refused_and_the_old_one_keeps_serving(
    tiny_cfg: FluxoraConfig,
    champion_dir: Path,
    own_registry: tuple[str, Home],
    tmp_path: Path,
    damage: str,
) -> None:
    uri, home = own_registry
    name = tiny_cfg.train.registered_model_name
    store = _store(tiny_cfg, home, uri)
    v1 = store.load_champion()

    bad = Path(shutil.copytree(champion_dir, tmp_path / "bad"))
    contract = json.loads((bad / CONTRACT_FILE).read_text())
    if damage == "truncated model":
        text = (bad / "model.json").read_text()
        (bad / "model.json").write_text(text[: len(text) // 2])
    elif damage == "contract from the future":
        (bad / CONTRACT_FILE).write_text(json.dumps(contract | {"version": 99}))
    else:  # loads fine, but cannot forecast: a horizon beyond what the features can build
        (bad / CONTRACT_FILE).write_text(json.dumps(contract | {"horizon": 500}))
    v2 = _register(uri, name, bad)
    _promote(uri, name, v2)

    assert store.refresh() is v1
    assert store.current is v1
    assert v2 in store.refused
    events = [(e.version, e.event) for e in store.history]
    assert events == [(v1.version, "served"), (v2, "refused")]
    assert store.refresh() is v1  # a refused version is not retried on every poll
    assert len(store.history) == 2

    fresh = _store(tiny_cfg, home, uri)  # a new process facing the bad champion: no model, clear error
    fresh_settings_lkg = fresh._settings.last_known_good
    fresh_settings_lkg.unlink()
    with pytest.raises(RegistryError, match="refused"):
        fresh.load_champion()
    assert fresh.current is None


def test_swap_under_concurrent_requests(
    tiny_cfg: FluxoraConfig,
    champion_dir: Path,
    own_registry: tuple[str, Home],
    online: OnlineFeatures,
    tmp_path: Path,
) -> None:
    """While the alias moves, every response comes whole from v1 or from v2, and none fails."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient
    from serving_support import key_headers, settings_for

    from fluxora.api.app import create_app

    uri, home = own_registry
    name = tiny_cfg.train.registered_model_name
    app = create_app(settings_for(tiny_cfg, home, tracking_uri=uri))
    store: ModelStore = app.state.services.store
    other = _other_model(champion_dir, tmp_path / "v2", tiny_cfg)

    series = "series_000"
    states = _states(online, tiny_cfg, [series])
    expected = {}
    for forecaster in (NativeForecaster.load(champion_dir), NativeForecaster.load(other)):
        expected[forecaster] = forecaster.forecast(states.features, states.origins, 12).point[0]

    with TestClient(app) as c:
        headers = key_headers(app)
        v1 = store.current
        assert v1 is not None
        v2 = _register(uri, name, other)
        by_version = dict(zip((v1.version, v2), expected.values(), strict=True))
        assert not np.allclose(by_version[v1.version], by_version[v2])  # the two are distinguishable

        def call(_: int) -> tuple[int, str, list[float]]:
            r = c.get("/v1/forecast", params={"series_id": series, "horizon": 12}, headers=headers)
            body = r.json()
            return r.status_code, body.get("model_version", ""), [p["value"] for p in body.get("points", [])]

        with ThreadPoolExecutor(max_workers=6) as pool:
            before = [pool.submit(call, i) for i in range(30)]
            _promote(uri, name, v2)
            swapped = store.refresh()
            during = [pool.submit(call, i) for i in range(30)]
            results = [f.result() for f in before + during]
        after = [call(i) for i in range(5)]

    assert swapped.version == v2
    assert all(code == 200 for code, _, _ in results + after), results
    for _, version, values in results + after:
        assert version in by_version
        np.testing.assert_allclose(values, by_version[version], rtol=0, atol=SERVED_ATOL)  # all from one model
    assert {v for _, v, _ in after} == {v2}
    assert [(e.version, e.event) for e in store.history] == [(v1.version, "served"), (v2, "served")]


def test_poller_follows_the_alias(
    tiny_cfg: FluxoraConfig, champion_dir: Path, own_registry: tuple[str, Home], tmp_path: Path
) -> None:
    import time

    uri, home = own_registry
    name = tiny_cfg.train.registered_model_name
    store = _store(tiny_cfg, home, uri, poll_interval_s=0.2)
    v1 = store.load_champion()
    v2 = _register(uri, name, _other_model(champion_dir, tmp_path / "v2", tiny_cfg))
    store.start_polling()
    try:
        _promote(uri, name, v2)
        deadline = time.monotonic() + 60  # a generous bound for a loaded machine, not a speed check
        while (store.current is None or store.current.version != v2) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        store.stop_polling()
    assert store.current is not None and store.current.version == v2 != v1.version


def test_direct_online_reads_equal_feast_sdk_reads(tiny_cfg: FluxoraConfig, trained_home: Home) -> None:
    """The hot path's direct store reads return exactly what Feast's get_online_features does."""
    direct, sdk = OnlineFeatures(trained_home), OnlineFeatures(trained_home)
    sdk._fast = False  # the public-API fallback
    series = ["series_001", "no_such_series", "series_000"]
    a, b = _states(direct, tiny_cfg, series), _states(sdk, tiny_cfg, series)
    assert direct._fast and a.series_ids == b.series_ids == ["series_001", "series_000"]
    assert a.missing == b.missing == ["no_such_series"]
    np.testing.assert_array_equal(a.origins, b.origins)
    for name in STATE_INPUTS:
        np.testing.assert_array_equal(a.features[name], b.features[name])
