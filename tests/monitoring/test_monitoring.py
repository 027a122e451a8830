"""Monitoring: season-matched windows, per-series drift, the retrain decision, robustness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fluxora.config import DataConfig, compose
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.monitoring import loop, windows
from fluxora.monitoring.per_series import series_drift


def _data(days: int, n_series: int = 2) -> pd.DataFrame:
    return generate(DataConfig(n_series=n_series, days=days))


def _slots(frame: pd.DataFrame) -> pd.Series:
    ts = frame[TIMESTAMP]
    return (ts.dt.dayofweek * 24 + ts.dt.hour).value_counts().sort_index()


def test_seasonal_reference_is_last_year_when_available() -> None:
    w = windows.select(_data(400), 7, "seasonal", 4, 28)
    assert w.kind == "seasonal_year" and w.shifts_weeks == (52,)
    assert w.reference[TIMESTAMP].max() <= w.current[TIMESTAMP].min() - timedelta(weeks=51)
    # same hours and weekdays, in the same proportions
    pd.testing.assert_series_equal(_slots(w.reference), _slots(w.current), check_names=False)


def test_seasonal_reference_falls_back_to_whole_weeks() -> None:
    w = windows.select(_data(60), 7, "seasonal", 4, 28)
    assert w.kind == "seasonal_weeks" and w.shifts_weeks == (1, 2, 3, 4)
    assert w.reference[TIMESTAMP].max() <= w.current_start  # no overlap with the current window
    ref, cur = _slots(w.reference), _slots(w.current)
    assert (ref == 4 * cur).all()  # four weeks of the very same hours and weekdays


def test_preceding_reference_is_the_days_before() -> None:
    w = windows.select(_data(60), 7, "preceding", 4, 14)
    assert w.reference[TIMESTAMP].min() > w.current_start - timedelta(days=14)
    assert w.reference[TIMESTAMP].max() <= w.current_start


def test_bad_reference_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="seasonal"):
        windows.select(_data(20), 7, "yesterday", 4, 14)


def test_weekly_cycle_is_not_drift_with_a_seasonal_reference(tmp_path: Path) -> None:
    """A Saturday against the Friday before looks like drift; against last Saturday it does not."""
    from fluxora.monitoring.drift import drift_report

    data = _data(60, n_series=1)
    data = data[data[TIMESTAMP] < data[TIMESTAMP].max().normalize()]  # end on a whole day
    last_day = data[TIMESTAMP].max().normalize()
    saturday = last_day - timedelta(days=(last_day.dayofweek - 5) % 7)
    data = data[data[TIMESTAMP] < saturday + timedelta(days=1)]
    naive = windows.select(data, 1, "preceding", 4, 1)
    seasonal = windows.select(data, 1, "seasonal", 4, 1)
    assert naive.current[TIMESTAMP].dt.dayofweek.eq(5).all()
    naive_result = drift_report(naive.reference, naive.current, [LOAD], tmp_path, name="naive")
    seasonal_result = drift_report(seasonal.reference, seasonal.current, [LOAD], tmp_path, name="seasonal")
    assert naive_result.columns[LOAD]["drifted"]
    assert not seasonal_result.columns[LOAD]["drifted"]


def _iid(series: list[str], rows: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2025-01-01", periods=rows, freq="h", tz="UTC")
    frames = [
        pd.DataFrame(
            {
                SERIES_ID: s,
                TIMESTAMP: ts,
                LOAD: rng.normal(100 + (shift or {}).get(s, 0), 10, rows),
                TEMPERATURE: rng.normal(10, 3, rows),
            }
        )
        for s in series
    ]
    return pd.concat(frames, ignore_index=True)


def test_per_series_drift_flags_the_shifted_series_only() -> None:
    names = ["a", "b", "c"]
    reference = _iid(names, 672, seed=1)
    current = _iid(names, 168, seed=2, shift={"b": 15.0})
    result = series_drift(reference, current, [LOAD, TEMPERATURE], min_rows=48)
    assert result["b"]["drifted"] and result["b"]["columns"][LOAD]["drifted"]
    assert not result["b"]["columns"][TEMPERATURE]["drifted"]
    assert not result["a"]["drifted"] and not result["c"]["drifted"]


def test_new_or_short_series_are_flagged_not_tested() -> None:
    w = windows.select(_data(60, n_series=2), 7, "seasonal", 4, 28)
    newcomer = w.current[w.current[SERIES_ID] == "series_000"].assign(**{SERIES_ID: "new_meter"})
    result = series_drift(w.reference, pd.concat([w.current, newcomer.iloc[:5]]), [LOAD], min_rows=48)
    assert result["new_meter"]["status"] == "insufficient_data"
    assert result["series_000"]["status"] == "ok"


def test_per_series_drift_tolerates_nan_and_constant_columns() -> None:
    w = windows.select(_data(60, n_series=1), 7, "seasonal", 4, 28)
    ref = w.reference.assign(flat=1.0, empty=np.nan)
    cur = w.current.assign(flat=1.0, empty=np.nan)
    cols = series_drift(ref, cur, [LOAD, "flat", "empty"], min_rows=48)["series_000"]["columns"]
    assert cols["flat"]["score"] is None and cols["empty"]["score"] is None
    assert cols[LOAD]["score"] is not None


NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
DRIFT = {"status": "ok", "drifted": True, "drift_share": 1.0}


@pytest.mark.parametrize(
    ("drift", "state", "rows", "retrain", "words"),
    [
        (None, {}, 500, False, "insufficient"),
        ({"status": "insufficient_data", "drifted": False, "drift_share": None}, {}, 500, False, "insufficient"),
        ({"status": "ok", "drifted": False, "drift_share": 0.0}, {}, 500, False, "no drift"),
        (DRIFT, {"last_trigger_at": (NOW - timedelta(hours=2)).isoformat()}, 500, False, "cooldown"),
        (DRIFT, {"last_trigger_at": (NOW - timedelta(hours=30)).isoformat()}, 10, False, "only 10 new rows"),
        (DRIFT, {"last_trigger_at": (NOW - timedelta(hours=30)).isoformat()}, 500, True, "past threshold"),
        (DRIFT, {}, 500, True, "past threshold"),
    ],
)
def test_retrain_decision(drift: dict | None, state: dict, rows: int, retrain: bool, words: str) -> None:
    decision = loop.decide(drift, state, rows, NOW, cooldown_hours=24, min_new_rows=24)
    assert decision.retrain is retrain
    assert words in decision.reason


def test_decisions_are_logged_and_triggers_move_the_state(tmp_path: Path) -> None:
    first = loop.decide(DRIFT, {}, 500, NOW, 24, 24)
    loop.log_decision(tmp_path, first)
    loop.log_decision(tmp_path, loop.decide({"status": "ok", "drifted": False, "drift_share": 0.0}, {}, 5, NOW, 24, 24))
    lines = (tmp_path / loop.DECISIONS_FILE).read_text().splitlines()
    assert len(lines) == 2
    assert loop.load_state(tmp_path) == {}  # deciding alone does not start the cooldown
    loop.mark_triggered(tmp_path, first.at, "2026-11-26 11:00:00+00:00")
    state = loop.load_state(tmp_path)
    assert loop.decide(DRIFT, state, 500, NOW + timedelta(hours=1), 24, 24).retrain is False


def test_monitor_step_on_too_little_data_reports_instead_of_crashing(tmp_path: Path) -> None:
    from fluxora import steps
    from fluxora.data import io
    from fluxora.paths import Home

    home = Home(tmp_path).ensure()
    one_row = _data(1, n_series=1).iloc[:1]
    io.write_parquet(one_row, home.validated_data)
    result = steps.monitor(compose(), home).outputs()
    assert result["status"] == "insufficient_data"
    assert result["decision"]["retrain"] is False
    assert result["series_insufficient"] == ["series_000"]


def test_monitor_step_season_matched_on_pipeline_data(trained_home, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    from fluxora import steps

    result = steps.monitor(tiny_cfg, trained_home).outputs()
    assert result["status"] == "ok"
    assert result["windows"]["kind"] == "seasonal_weeks"
    assert Path(result["series_json"]).is_file()
    assert (trained_home.reports / loop.DECISIONS_FILE).is_file()


def test_status_shows_insufficient_data_and_the_last_decision(tmp_path: Path) -> None:
    from fluxora import steps
    from fluxora.cli.render import status_text
    from fluxora.data import io
    from fluxora.paths import Home
    from fluxora.status import _drift

    home = Home(tmp_path).ensure()
    io.write_parquet(_data(1, n_series=1).iloc[:1], home.validated_data)
    steps.monitor(compose(), home)
    drift = _drift(home)
    assert drift is not None and drift["status"] == "insufficient_data"
    assert drift["series_insufficient"] == ["series_000"]
    text = status_text({"home": str(home.root), "champion": None, "online_store": None, "drift": drift})
    assert "insufficient data" in text and "retrain       no:" in text
