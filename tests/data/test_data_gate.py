"""The validation gate: each check under each policy, exact row accounting, resampling, the written report."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxora import steps
from fluxora.config import DataConfig, FluxoraConfig, GateConfig
from fluxora.data import io
from fluxora.data.errors import GateFailedError
from fluxora.data.gate import CHECK, REASON, run_gate
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.errors import ConfigError, DataValidationError
from fluxora.paths import Home

LENIENT = GateConfig(min_series_days=0)


def _series(sid: str = "a", hours: int = 72, freq: str = "h", seed: int = 0) -> pd.DataFrame:
    stamps = pd.date_range(
        "2024-01-01",
        periods=hours * pd.Timedelta("1h") // pd.Timedelta(pd.tseries.frequencies.to_offset(freq)),
        freq=freq,
        tz="UTC",
    )
    rng = np.random.default_rng(seed)
    load = 100 + 10 * np.sin(np.arange(len(stamps)) / 3) + rng.normal(0, 1, len(stamps))
    return pd.DataFrame(
        {SERIES_ID: sid, TIMESTAMP: stamps, LOAD: load, TEMPERATURE: 10 + np.cos(np.arange(len(stamps)))}
    )


def _accounted(result_report: dict[str, object]) -> None:
    r = result_report
    assert r["rows_in"] == r["rows_out"] + r["rows_quarantined"]  # type: ignore[operator]


def test_clean_data_passes_unchanged_and_sorted() -> None:
    df = pd.concat([_series("b"), _series("a")], ignore_index=True)
    res = run_gate(df.sample(frac=1, random_state=1), LENIENT)
    expected = df.sort_values([SERIES_ID, TIMESTAMP]).reset_index(drop=True)
    pd.testing.assert_frame_equal(res.data, expected)
    assert res.report["rows_in"] == res.report["rows_out"] == len(df) and res.report["rows_quarantined"] == 0
    assert res.quarantine.empty and res.report["status"] == "passed"


def test_duplicates_keep_the_first_and_quarantine_the_rest() -> None:
    df = _series()
    dup = df.iloc[[5]].assign(**{LOAD: -1.0})
    res = run_gate(pd.concat([df, dup], ignore_index=True), LENIENT)
    assert len(res.data) == len(df) and res.data[LOAD].iloc[5] == df[LOAD].iloc[5]
    assert res.quarantine[CHECK].tolist() == ["duplicates"] and res.quarantine[LOAD].tolist() == [-1.0]
    _accounted(res.report)


def test_short_gaps_are_filled_and_flagged_long_gaps_cut_the_older_part() -> None:
    df = _series(hours=200)
    short = df.drop(index=[10, 11])  # 2 missing steps: filled
    res = run_gate(short, LENIENT)
    assert len(res.data) == len(df) and res.report["rows_filled"] == 2 and res.report["rows_out"] == len(df) - 2
    filled = res.data.set_index(TIMESTAMP).loc[df[TIMESTAMP].iloc[10], LOAD]
    assert min(df[LOAD].iloc[9], df[LOAD].iloc[12]) <= filled <= max(df[LOAD].iloc[9], df[LOAD].iloc[12])
    assert (res.repairs[CHECK] == "gaps").sum() == 2

    long = df.drop(index=range(50, 60))  # 10 missing > max_fill_steps=6: keep only the part after it
    res = run_gate(long, LENIENT)
    assert res.data[TIMESTAMP].min() == df[TIMESTAMP].iloc[60]
    assert res.report["rows_quarantined"] == 50 and set(res.quarantine[CHECK]) == {"gaps"}
    _accounted(res.report)


def test_gap_policies_fail_and_quarantine() -> None:
    df = pd.concat([_series("a").drop(index=[10]), _series("b")], ignore_index=True)
    with pytest.raises(GateFailedError, match=r"\[gaps\].*series 'a'") as info:
        run_gate(df, replace(LENIENT, gaps="fail"))
    assert info.value.report["status"] == "failed" and info.value.report["failure"]["check"] == "gaps"
    res = run_gate(df, replace(LENIENT, gaps="quarantine"))
    assert res.data[SERIES_ID].unique().tolist() == ["b"] and res.report["rows_quarantined"] == 71


def test_non_finite_and_negative_quarantined_then_filled_or_repaired_in_place() -> None:
    df = _series()
    df.loc[3, LOAD] = np.inf
    df.loc[4, LOAD] = np.nan
    df.loc[20, LOAD] = -5.0
    res = run_gate(df, LENIENT)
    assert sorted(res.quarantine[CHECK]) == ["negative", "non_finite", "non_finite"]
    assert res.report["rows_filled"] == 3 and np.isfinite(res.data[LOAD]).all() and len(res.data) == len(df)
    _accounted(res.report)

    res = run_gate(df, replace(LENIENT, non_finite="repair", negative="repair"))
    assert res.quarantine.empty and res.report["rows_repaired"] == 3 and res.report["rows_out"] == len(df)
    assert np.isposinf(res.repairs.loc[res.repairs[CHECK] == "non_finite", "original"]).any()


def test_spikes_are_repaired_level_shifts_are_not() -> None:
    df = _series(hours=300)
    df.loc[100:, LOAD] += 50  # a level shift: one big step, not a spike
    df.loc[40, LOAD] = 5_000.0
    res = run_gate(df, LENIENT)
    assert res.report["checks"]["outliers"]["found"] == 1
    assert res.data[LOAD].iloc[40] < 200 and res.repairs["original"].tolist() == [5_000.0]
    assert res.data[LOAD].iloc[150] > 140  # shift kept
    with pytest.raises(GateFailedError, match="outliers"):
        run_gate(df, replace(LENIENT, outliers="fail"))


def test_flat_lines_quarantined_after_their_first_value() -> None:
    df = _series(hours=100)
    df.loc[30:59, LOAD] = 42.0  # 30 identical readings: a stuck meter
    res = run_gate(df, replace(LENIENT, max_fill_steps=50))
    assert res.report["checks"]["flat_lines"]["rows_quarantined"] == 29
    assert (res.quarantine[LOAD] == 42.0).all() and res.report["rows_filled"] == 29


def test_missing_weather_is_interpolated_and_a_series_without_any_is_kept_load_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = _series("a"), _series("b")
    a.loc[5:7, TEMPERATURE] = np.nan
    b[TEMPERATURE] = np.nan
    with caplog.at_level("WARNING", logger="fluxora.data"):
        res = run_gate(pd.concat([a, b], ignore_index=True), LENIENT)
    assert res.data[SERIES_ID].unique().tolist() == ["a", "b"] and res.report["rows_repaired"] == 3
    by_series = res.data.groupby(SERIES_ID, observed=True)[TEMPERATURE]
    assert by_series.apply(lambda t: np.isfinite(t).all()).to_dict() == {"a": True, "b": False}
    assert by_series.apply(lambda t: t.isna().all()).to_dict() == {"a": False, "b": True}
    assert res.report["checks"]["no_weather"]["found"] == len(b)
    warnings = [r.getMessage() for r in caplog.records if r.name == "fluxora.data"]
    assert len(warnings) == 1 and "1 of 2 series have no temperature at all (b)" in warnings[0]
    assert "\n" not in warnings[0] and "data.gate.no_weather" in warnings[0]


def test_no_weather_policies_quarantine_or_refuse_load_only_series() -> None:
    a, b = _series("a"), _series("b").assign(**{TEMPERATURE: np.nan})
    both = pd.concat([a, b], ignore_index=True)
    res = run_gate(both, replace(LENIENT, no_weather="quarantine"))
    assert res.data[SERIES_ID].unique().tolist() == ["a"]
    assert (res.quarantine[REASON] == "series has no temperature at all").sum() == len(b)
    with pytest.raises(GateFailedError, match=r"no_weather.*1 of 2 series.*data.gate.no_weather=load_only"):
        run_gate(both, replace(LENIENT, no_weather="fail"))
    only = run_gate(b, LENIENT)  # nothing but load-only data passes too
    assert len(only.data) == len(b) and only.data[TEMPERATURE].isna().all()


def test_too_short_series_are_quarantined() -> None:
    df = pd.concat([_series("a", hours=24 * 15), _series("b", hours=24 * 3)], ignore_index=True)
    res = run_gate(df, GateConfig())
    assert res.data[SERIES_ID].unique().tolist() == ["a"] and set(res.quarantine[CHECK]) == {"too_short"}


def test_quarter_hours_are_averaged_to_the_model_resolution() -> None:
    quarter = _series("q", hours=48, freq="15min")
    hourly = _series("h", hours=48)
    res = run_gate(pd.concat([quarter, hourly], ignore_index=True), LENIENT)
    q = res.data[res.data[SERIES_ID] == "q"]
    assert len(q) == 48 and (q[TIMESTAMP].diff().dropna() == pd.Timedelta("1h")).all()
    assert q[LOAD].iloc[0] == pytest.approx(quarter[LOAD].iloc[:4].mean())
    assert res.report["source_resolution"] == {"15min": 1, "1h": 1} and res.report["rows_out"] == 48 * 4 + 48


def test_off_grid_rows_are_quarantined_and_coarse_data_refused() -> None:
    df = _series()
    odd = df.iloc[[3]].assign(**{TIMESTAMP: df[TIMESTAMP].iloc[3] + pd.Timedelta(minutes=7)})
    res = run_gate(pd.concat([df, odd], ignore_index=True), LENIENT)
    assert res.quarantine[CHECK].tolist() == ["irregular_steps"]
    daily = _series(hours=24 * 30, freq="D")
    with pytest.raises(GateFailedError, match="resolution"):
        run_gate(daily, LENIENT)


def test_unknown_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"data.gate.duplicates: 'repair' is not one of fail, quarantine"):
        run_gate(_series(), replace(LENIENT, duplicates="repair"))


# -- the canonical rules (once `fluxora.data.validate`), held by the gate -----------------------


def _small() -> pd.DataFrame:
    return generate(DataConfig(n_series=2, days=3))


def test_validate_sorts_and_summarises() -> None:
    df = _small().sample(frac=1.0, random_state=0)
    res = run_gate(df, LENIENT)
    assert res.report["rows_written"] == len(df) and res.report["series_out"] == 2
    assert res.data.equals(res.data.sort_values([SERIES_ID, TIMESTAMP]))
    assert res.report["source_resolution"] == {"1h": 2}


def _expect(check: str, df: pd.DataFrame, cfg: GateConfig = LENIENT) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        run_gate(df, cfg)
    assert info.value.check == check
    return info.value


def test_validate_rules() -> None:
    df = _small()
    _expect("columns", df.drop(columns=[LOAD]))
    _expect("no_weather", df.drop(columns=[TEMPERATURE]), replace(LENIENT, no_weather="fail"))
    _expect("non_empty", df.iloc[:0])
    _expect("timestamp_utc", df.assign(**{TIMESTAMP: df[TIMESTAMP].dt.tz_localize(None)}))
    _expect("numeric", df.assign(**{LOAD: df[LOAD].astype(str)}))
    strict = replace(LENIENT, non_finite="fail", missing_weather="fail", duplicates="fail", gaps="fail")
    bad = df.copy()
    bad.loc[5, LOAD] = np.inf
    assert _expect("non_finite", bad, strict).series_id == "series_000"
    bad = df.copy()
    bad.loc[7, TEMPERATURE] = np.nan
    _expect("missing_weather", bad, strict)
    _expect("duplicates", pd.concat([df, df.iloc[[3]]]), strict)
    err = _expect("gaps", df.drop(index=10), strict)
    assert err.series_id == "series_000" and "1 missing step(s), first before 2024-01-01 11:00:00" in str(err)


@settings(max_examples=40, deadline=None)
@given(
    n_dup=st.integers(0, 5),
    n_nan=st.integers(0, 5),
    n_neg=st.integers(0, 5),
    n_drop=st.integers(0, 30),
    seed=st.integers(0, 1000),
)
def test_rows_in_equals_rows_out_plus_quarantined_always(
    n_dup: int, n_nan: int, n_neg: int, n_drop: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    df = pd.concat([_series("a", hours=120, seed=seed), _series("b", hours=120, seed=seed + 1)], ignore_index=True)
    df.loc[rng.choice(len(df), n_nan, replace=False), LOAD] = np.nan
    df.loc[rng.choice(len(df), n_neg, replace=False), LOAD] = -1.0
    df = df.drop(index=rng.choice(len(df), n_drop, replace=False))
    df = pd.concat([df, df.sample(n=n_dup, random_state=seed)], ignore_index=True)
    try:
        res = run_gate(df, LENIENT)
    except GateFailedError as exc:  # e.g. every row gone: still a report, never a silent loss
        assert exc.report["status"] == "failed"
        return
    r = res.report
    assert r["rows_in"] == len(df) == r["rows_out"] + r["rows_quarantined"]
    assert len(res.quarantine) == r["rows_quarantined"]
    assert len(res.data) == r["rows_out"] + r["rows_filled"]
    assert res.data.groupby(SERIES_ID)[TIMESTAMP].diff().dropna().eq(pd.Timedelta("1h")).all()


def _home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("gate-home")).ensure()


def test_validate_step_writes_report_quarantine_and_data(
    tiny_cfg: FluxoraConfig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = _home(tmp_path_factory)
    raw = _series(hours=24 * 20)
    raw = pd.concat([raw, raw.iloc[[0]]], ignore_index=True)
    io.write_parquet(raw, home.raw_data)
    result = steps.validate(tiny_cfg, home)
    report = json.loads((home.reports / "validation.json").read_text())
    assert {k: report[k] for k in ("rows_in", "rows_out", "rows_quarantined", "rows_repaired")} == {
        "rows_in": len(raw),
        "rows_out": len(raw) - 1,
        "rows_quarantined": 1,
        "rows_repaired": 0,
    }
    assert result.outputs()["rows_quarantined"] == 1
    assert len(pd.read_parquet(home.data / "quarantine.parquet")) == 1
    assert "rows in 481 = out 480 + quarantined 1" in (home.reports / "validation.txt").read_text()
    assert len(io.read_parquet(home.validated_data)) == len(raw) - 1


def test_failed_gate_raises_typed_error_writes_report_and_no_data(
    tiny_cfg: FluxoraConfig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = _home(tmp_path_factory)
    io.write_parquet(_series(hours=24 * 20), home.raw_data)
    steps.validate(tiny_cfg, home)  # a good run leaves validated data behind ...
    bad = _series(hours=24 * 20).drop(index=[7])
    io.write_parquet(bad, home.raw_data)
    cfg = replace(tiny_cfg, data=replace(tiny_cfg.data, gate=replace(tiny_cfg.data.gate, gaps="fail")))
    with pytest.raises(DataValidationError, match=r"validation failed \[gaps\]"):
        steps.validate(cfg, home)
    assert not home.validated_data.exists()  # ... which a failed gate removes: nothing stale flows on
    report = json.loads((home.reports / "validation.json").read_text())
    assert report["status"] == "failed" and report["failure"]["check"] == "gaps" and report["rows_in"] == len(bad)


def test_when_nothing_passes_the_error_names_the_main_reason() -> None:
    with pytest.raises(
        GateFailedError, match=r"\[non_empty\].*by too_short: series covers less than 14 days of history"
    ):
        run_gate(_series(hours=72), GateConfig())


def test_rows_without_a_series_id_are_quarantined_not_merged_into_a_series() -> None:
    """Rows with an empty, blank or null `series_id` belong to no series the API can address:
    quarantined with the reason and accounted for (`fail` refuses them instead)."""
    df = pd.concat([_series("a"), _series("b")], ignore_index=True).astype({SERIES_ID: object})
    df.loc[[3, 4], SERIES_ID] = ""  # what ingest makes of an empty CSV cell
    df.loc[80, SERIES_ID] = "  "
    df.loc[90, SERIES_ID] = None
    res = run_gate(df, LENIENT)
    assert sorted(res.data[SERIES_ID].unique()) == ["a", "b"]  # no series "" (nor "nan")
    assert res.report["series_out"] == 2
    assert res.report["rows_quarantined"] == 4 and set(res.quarantine[CHECK]) == {"missing_series_id"}
    assert res.quarantine[REASON].str.contains("empty series_id").all()
    assert res.report["checks"]["missing_series_id"]["rows_quarantined"] == 4
    _accounted(res.report)
    assert res.report["rows_filled"] == 4  # the four holes in a and b are ordinary gaps now

    err = _expect("missing_series_id", df, replace(LENIENT, missing_series_id="fail"))
    assert "4 row(s): empty series_id" in str(err)
