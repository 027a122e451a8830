"""The synthetic generator: sizes, resolutions, holidays and the anomalies it adds on request."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fluxora.config import DataConfig, GateConfig
from fluxora.data.gate import run_gate
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.synthetic import MAX_SERIES, generate, generate_chunks


def test_one_to_ten_thousand_series() -> None:
    assert generate(DataConfig(n_series=1, days=2))[SERIES_ID].unique().tolist() == ["series_000"]
    many = generate(DataConfig(n_series=MAX_SERIES, days=1, holidays_country=""))
    assert many[SERIES_ID].nunique() == MAX_SERIES and len(many) == MAX_SERIES * 24
    assert many[SERIES_ID].iloc[-1] == "series_9999"
    with pytest.raises(ValueError, match="at most 10000"):
        generate(DataConfig(n_series=MAX_SERIES + 1))


@pytest.mark.parametrize(("resolution", "per_day"), [("15min", 96), ("30min", 48), ("h", 24)])
def test_configurable_resolution_and_length(resolution: str, per_day: int) -> None:
    df = generate(DataConfig(n_series=2, days=3, resolution=resolution))
    assert len(df) == 2 * 3 * per_day
    steps = df.groupby(SERIES_ID)[TIMESTAMP].diff().dropna().unique()
    assert list(steps) == [pd.Timedelta(days=1) / per_day]


def test_chunks_are_the_same_data_and_seeded() -> None:
    cfg = DataConfig(n_series=300, days=2)
    whole = generate(cfg)
    chunks = list(generate_chunks(cfg))
    assert len(chunks) == 3
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    assert not generate(replace(cfg, seed=1)).equals(whole)


def test_public_holidays_lower_the_load() -> None:
    cfg = DataConfig(n_series=20, start="2024-12-01", days=40, noise=0.0)
    with_h = generate(cfg).set_index(TIMESTAMP).sort_index()
    without = generate(replace(cfg, holidays_country="")).set_index(TIMESTAMP).sort_index()
    christmas = slice("2024-12-25", "2024-12-26")  # Wednesday and Thursday, public holidays in DE
    ratio = with_h.loc[christmas, LOAD].mean() / without.loc[christmas, LOAD].mean()
    assert ratio < 0.93
    ordinary = slice("2024-12-11", "2024-12-12")
    assert with_h.loc[ordinary, LOAD].mean() == pytest.approx(without.loc[ordinary, LOAD].mean())


def test_anomalies_on_request_and_the_gate_handles_them() -> None:
    cfg = DataConfig(n_series=4, days=30, missing_stretches=2, outliers=3, level_shifts=1)
    clean = generate(replace(cfg, missing_stretches=0, outliers=0, level_shifts=0))
    dirty = generate(cfg)
    assert len(dirty) < len(clean)  # missing stretches remove rows
    assert (dirty[LOAD] == 0).sum() + (dirty[LOAD] > 3.5 * dirty.groupby(SERIES_ID)[LOAD].transform("median")).sum() > 0
    assert np.isfinite(dirty[[LOAD, TEMPERATURE]].to_numpy()).all()
    res = run_gate(dirty, GateConfig(max_fill_steps=48))
    r = res.report
    assert r["rows_in"] == len(dirty) == r["rows_out"] + r["rows_quarantined"]
    assert r["rows_filled"] > 0 and r["checks"]["outliers"]["found"] > 0
    assert res.data.groupby(SERIES_ID)[TIMESTAMP].diff().dropna().eq(pd.Timedelta("1h")).all()
