"""Point-in-time correctness of the feature store, through real Feast and DuckDB.

Features read at an origin must equal what can be recomputed from the raw canonical data cut
at the origin (nothing stamped later may be used), and the online store right after
materialization must hold the offline values at the same instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fluxora.config import FeaturesConfig, FluxoraConfig, InfraConfig
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.features import store as fs
from fluxora.features.build import feature_tables
from fluxora.features.names import EVENT_TIMESTAMP
from fluxora.paths import Home
from fluxora.runtime import prepare

V2 = "load_forecast_v2"
TTL = pd.Timedelta(hours=2)
HOLIDAYS = "US"  # the tiny data span New Year and MLK day, so the holiday flag is exercised


def _features(cfg: FluxoraConfig) -> FeaturesConfig:
    return replace(cfg.features, holiday_country=HOLIDAYS)


LOAD_VALUED = ("load_last", "load_lag_1h", "load_lag_24h", "load_lag_168h", "load_mean_6h", "load_mean_168h")


@pytest.fixture(scope="module")
def pit_data(tiny_cfg: FluxoraConfig) -> pd.DataFrame:
    """Synthetic series whose load encodes its own timestamp (hours since epoch plus a wiggle).

    A load feature that reads a value stamped after the origin is then larger than any value
    observed by the origin, which the canary test below can see without recomputing anything.
    """
    data = generate(tiny_cfg.data).sort_values([SERIES_ID, TIMESTAMP], ignore_index=True)
    hours = (data[TIMESTAMP] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(hours=1)
    data[LOAD] = hours.astype("float64") + 0.01 * np.sin(hours.to_numpy())
    # One series ends a day early: materialization must still load its newest row.
    cut = data[TIMESTAMP].max() - pd.Timedelta(days=1)
    early = (data[SERIES_ID] == data[SERIES_ID].max()) & (data[TIMESTAMP] > cut)
    return data[~early].reset_index(drop=True)


@pytest.fixture(scope="module")
def pit_store(tmp_path_factory: pytest.TempPathFactory, tiny_cfg: FluxoraConfig, pit_data: pd.DataFrame) -> Iterator:
    home = prepare(Home(tmp_path_factory.mktemp("pit-home")))
    published = fs.publish(home, feature_tables(pit_data, _features(tiny_cfg)), InfraConfig())
    yield published.store


def _random_origins(data: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Random (series, time) pairs, not on the hour, across the data and a little past its end."""
    rng = np.random.default_rng(seed)
    series = rng.choice(sorted(data[SERIES_ID].unique()), n)
    start, end = data[TIMESTAMP].min(), data[TIMESTAMP].max() + pd.Timedelta(hours=3)
    seconds = rng.integers(0, int((end - start).total_seconds()), n)
    return pd.DataFrame({SERIES_ID: series, EVENT_TIMESTAMP: start + pd.to_timedelta(seconds, "s")})


def _expected(data: pd.DataFrame, series_id: str, origin: pd.Timestamp, cfg: FluxoraConfig) -> dict[str, object]:
    """Every v2 feature recomputed from the raw rows stamped at or before `origin` (None: no value)."""
    import holidays

    past = data[(data[SERIES_ID] == series_id) & (data[TIMESTAMP] <= origin)]
    if past.empty or origin - past[TIMESTAMP].iloc[-1] > TTL:
        return {}
    load = past[LOAD].to_numpy()
    temp = past[TEMPERATURE].to_numpy()
    last = past[TIMESTAMP].iloc[-1]
    hb, cb = cfg.features.heating_base_c, cfg.features.cooling_base_c
    out: dict[str, object] = {
        "hour": last.hour,
        "day_of_week": last.dayofweek,
        "day_of_year": last.dayofyear,
        "is_holiday": int(last.date() in holidays.country_holidays(HOLIDAYS, years=last.year)),
    }
    out["is_working_day"] = int(last.dayofweek < 5 and not out["is_holiday"])
    if len(past) >= 24:  # weather rows start once the 24 h windows are full
        out |= {
            "temperature": temp[-1],
            "heating_degrees": max(hb - temp[-1], 0.0),
            "cooling_degrees": max(temp[-1] - cb, 0.0),
            "temp_min_24h": temp[-24:].min(),
            "temp_max_24h": temp[-24:].max(),
            "heating_degree_hours_24h": np.maximum(hb - temp[-24:], 0).sum(),
            "cooling_degree_hours_24h": np.maximum(temp[-24:] - cb, 0).sum(),
        }
    if len(past) >= 169:
        out |= {
            "load_last": load[-1],
            "load_lag_1h": load[-2],
            "load_lag_24h": load[-25],
            "load_lag_168h": load[-169],
            "load_mean_6h": load[-6:].mean(),
            "load_mean_168h": load[-168:].mean(),
            "load_std_24h": load[-24:].std(ddof=1),
            "load_min_24h": load[-24:].min(),
            "load_max_24h": load[-24:].max(),
        }
    if len(past) >= 168:
        out |= {
            "load_history": load[-168:],
            "temp_history": temp[-24:],
            "load_mean_24h": load[-24:].mean(),
            "temp_mean_24h": temp[-24:].mean(),
        }
    return out


def _assert_row_matches(row: pd.Series, expected: dict[str, object], features: list[str]) -> None:
    for name in features:
        got, want = row[name], expected.get(name)
        where = f"{name} for {row[SERIES_ID]} at {row[EVENT_TIMESTAMP]}"
        if want is None:
            assert got is None or (np.isscalar(got) and pd.isna(got)), f"{where}: expected no value, got {got!r}"
        else:
            assert got is not None and not (np.isscalar(got) and pd.isna(got)), f"{where}: missing"
            np.testing.assert_allclose(np.asarray(got, dtype="float64"), np.asarray(want, dtype="float64"), rtol=1e-5)


def test_historical_features_equal_recomputation_from_data_cut_at_origin(
    pit_store, pit_data: pd.DataFrame, tiny_cfg: FluxoraConfig
) -> None:
    entity = _random_origins(pit_data, 150, seed=7)
    result = fs.historical(pit_store, entity, V2)
    features = [c for c in result.columns if c not in (SERIES_ID, EVENT_TIMESTAMP, "temp_forecast")]
    assert len(result) == len(entity) and len(features) == 25
    # Both the early (no full history), inside and past-TTL cases are drawn.
    n_full = sum(len(_expected(pit_data, s, t, tiny_cfg)) == 25 for s, t in entity.itertuples(index=False))
    assert 0 < n_full < len(entity)
    for _, row in result.iterrows():
        expected = _expected(pit_data, row[SERIES_ID], row[EVENT_TIMESTAMP], tiny_cfg)
        _assert_row_matches(row, expected, features)


def test_no_load_feature_uses_a_value_stamped_after_the_origin(pit_store, pit_data: pd.DataFrame) -> None:
    """Load encodes its own hour: every load-valued feature is at most the origin's hour."""
    entity = _random_origins(pit_data, 300, seed=11)
    result = fs.historical(pit_store, entity, V2).dropna(subset=["load_last"])
    assert len(result) > 100
    origin_hours = (result[EVENT_TIMESTAMP] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(hours=1)
    bound = origin_hours.to_numpy() + 0.011  # the wiggle
    for name in LOAD_VALUED:
        assert (result[name].to_numpy() <= bound).all(), name
    history_max = np.array([np.max(h) for h in result["load_history"]])
    assert (history_max <= bound).all()
    # ... and the state is the latest allowed one, not an older row.
    np.testing.assert_allclose(result["load_last"], np.floor(origin_hours), atol=0.011)


def test_online_values_equal_offline_values_at_the_materialized_instant(pit_store, pit_data: pd.DataFrame) -> None:
    series_ids = sorted(pit_data[SERIES_ID].unique())
    online = fs.online(pit_store, [*series_ids, "no_such_series"], V2)
    assert online[fs.ONLINE_TIMESTAMP][-1] is None
    stamps = [pd.Timestamp(t) for t in online[fs.ONLINE_TIMESTAMP][:-1]]
    last = pit_data.groupby(SERIES_ID)[TIMESTAMP].max()
    assert stamps == [last[s] for s in series_ids]
    offline = fs.historical(pit_store, pd.DataFrame({SERIES_ID: series_ids, EVENT_TIMESTAMP: stamps}), V2)
    features = [c for c in offline.columns if c not in (SERIES_ID, EVENT_TIMESTAMP)]
    for i, sid in enumerate(series_ids):
        row = offline[offline[SERIES_ID] == sid].iloc[0]
        for name in features:
            want = row[name]
            got = online[name][i]
            if want is None or (np.isscalar(want) and pd.isna(want)):
                assert got is None, f"{name} {sid}"
            else:
                np.testing.assert_allclose(np.asarray(got, "float64"), np.asarray(want, "float64"), rtol=1e-6)


def test_feature_repo_holds_only_definitions() -> None:
    """`feast apply` imports every .py in feature_repo/: nothing there may run work at import."""
    repo = fs.feature_repo_dir()
    for file in repo.glob("*.py"):
        text = Path(file).read_text()
        assert "apply(" not in text and "materialize" not in text and "__main__" not in text, file
