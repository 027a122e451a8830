"""Per-series drift against each series' own history (`monitoring.effect`) and its Evidently report."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fluxora.config import DataConfig, MonitorConfig
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.monitoring import effect
from fluxora.monitoring.drift import drift_report

S = effect.settings(MonitorConfig())  # the defaults of MonitorConfig


def _panel(n_series: int = 6, days: int = 75) -> pd.DataFrame:
    return generate(DataConfig(n_series=n_series, start="2024-10-01", days=days, seed=3))


def _last_days(data: pd.DataFrame, sid: str, days: float) -> pd.Series:
    return (data[SERIES_ID] == sid) & (data[TIMESTAMP] > data[TIMESTAMP].max() - pd.Timedelta(days=days))


@pytest.fixture(scope="module")
def changed() -> dict[str, dict]:
    """Three changes started 2 days before the end; three series unchanged."""
    data = _panel()
    data.loc[_last_days(data, "series_000", 2), LOAD] *= 1.15  # level shift
    stuck = _last_days(data, "series_001", 2)
    data.loc[stuck, LOAD] = data.loc[stuck, LOAD].iloc[0]  # meter stuck
    late = _last_days(data, "series_002", 2)
    data.loc[late, LOAD] = data.groupby(SERIES_ID)[LOAD].shift(1)[late]  # clock one hour late
    return effect.panel_effects(data, S, holidays_country="DE")[1]


def test_unchanged_series_do_not_drift() -> None:
    _, series = effect.panel_effects(_panel(), S, holidays_country="DE")
    assert {r["status"] for r in series.values()} == {"ok"}
    assert not any(r["drifted"] for r in series.values())
    summary = effect.summarize(series, 0.1)
    assert summary["drifted"] is False and summary["drift_share"] == 0.0 and summary["n_columns"] == 6


@pytest.mark.parametrize(("sid", "stat"), [("series_000", "level"), ("series_001", "misfit"), ("series_002", "clock")])
def test_each_change_is_seen_by_its_statistic(changed: dict[str, dict], sid: str, stat: str) -> None:
    assert changed[sid]["drifted"]
    assert changed[sid]["stats"][stat]["drifted"], changed[sid]["stats"][stat]


def test_only_the_changed_series_drift(changed: dict[str, dict]) -> None:
    assert sorted(s for s, r in changed.items() if r["drifted"]) == ["series_000", "series_001", "series_002"]
    summary = effect.summarize(changed, 0.1)
    assert summary["drifted"] and summary["drift_share"] == pytest.approx(0.5)


def _flat_response(days: int, warm_from: float | None = None) -> pd.DataFrame:
    """Load with a daily cycle and no temperature response; temperature noise, warmer at the end."""
    rng = np.random.default_rng(5)
    ts = pd.date_range("2025-01-01", periods=days * 24, freq="h", tz="UTC")
    load = 100 + 20 * np.sin(2 * np.pi * ts.hour / 24) + rng.normal(0, 2, len(ts))
    temp = 10 + rng.normal(0, 1.0, len(ts))
    if warm_from is not None:
        temp[ts > ts.max() - pd.Timedelta(days=warm_from)] += 8.0
    return pd.DataFrame({SERIES_ID: "flat", TIMESTAMP: ts, LOAD: load, TEMPERATURE: temp})


def test_weather_drift_is_reported_apart_from_load_drift() -> None:
    _, series = effect.panel_effects(_flat_response(70, warm_from=2), S)
    res = series["flat"]
    assert res["weather_drifted"] and not res["drifted"]
    summary = effect.summarize(series, 0.1)
    assert summary["weather"]["series_drifted"] == ["flat"] and summary["drifted"] is False


def test_without_temperature_and_with_gaps_the_load_is_still_judged() -> None:
    data = _flat_response(70).drop(columns=[TEMPERATURE])
    data = data.drop(index=data.index[100:130])  # a gap of 30 hours in the fit span
    _, series = effect.panel_effects(data, S)
    assert series["flat"]["status"] == "ok" and "weather" not in series["flat"]["stats"]
    data.loc[data.index[-48:], LOAD] *= 1.2
    assert effect.panel_effects(data, S)[1]["flat"]["stats"]["level"]["drifted"]


def test_short_history_is_insufficient_and_a_late_series_is_new() -> None:
    data = _panel(n_series=2, days=60)
    newcomer = data[(data[SERIES_ID] == "series_000") & _last_days(data, "series_000", 5)].assign(
        **{SERIES_ID: "z_new"}
    )
    _, series = effect.panel_effects(pd.concat([data, newcomer]), S)
    assert series["z_new"]["status"] == "new" and series["z_new"]["first_seen"].startswith(
        str((data[TIMESTAMP].max() - pd.Timedelta(days=5) + pd.Timedelta(hours=1)).date())
    )
    _, short = effect.panel_effects(_panel(n_series=1, days=35), S)
    assert short["series_000"]["status"] == "insufficient_data" and not short["series_000"]["drifted"]
    assert effect.summarize(short, 0.1)["status"] == "insufficient_data"


def test_judge_needs_both_robust_sds_and_the_minimum_effect() -> None:
    calm = [0.0] * 20  # no spread at all: the minimum effect decides alone
    assert not effect.judge("level", 0.04, calm, S)["drifted"]
    assert effect.judge("level", -0.06, calm, S)["drifted"]  # level drifts both ways
    noisy = list(np.random.default_rng(1).normal(0, 0.05, 20))
    assert not effect.judge("level", 0.12, noisy, S)["drifted"]  # about 2.5 SDs of its own history
    assert not effect.judge("misfit", -1.0, calm, S)["drifted"]  # a better fit is no drift
    few = effect.judge("level", 1.0, calm[:5], S)
    assert few["score"] is None and not few["drifted"]
    with pytest.raises(ValueError, match="drift_k"):
        dataclasses.replace(S, k=0)


def test_the_evidently_report_holds_the_same_decisions(changed: dict[str, dict], tmp_path: Path) -> None:
    summary = effect.summarize(changed, 0.1)
    windows = {"current_start": "2024-12-12 23:00:00+00:00", "end": "2024-12-14 23:00:00+00:00"}
    out = drift_report(summary, changed, windows, S, tmp_path, max_series=4)
    assert sorted(out["report_series"][:3]) == ["series_000", "series_001", "series_002"]  # drifted first
    assert len(out["report_series"]) == 4
    on_disk = json.loads((tmp_path / "drift.json").read_text())
    assert on_disk["drifted"] is True and on_disk["n_drifted"] == 3
    for col, res in on_disk["columns"].items():
        sid, stat = col.split(" · ")
        assert res["drifted"] == changed[sid]["stats"][stat]["drifted"]
    assert on_disk["columns"]["series_000 · level"]["drifted"]
    snapshot = json.loads((tmp_path / "drift.evidently.json").read_text())
    assert any("fluxora_own_history_level" in str(m["config"].get("method")) for m in snapshot["metrics"])
    page = (tmp_path / "drift.html").read_text()
    assert "2024-12-12 23:00:00+00:00 .. 2024-12-14 23:00:00+00:00" in page and "series_005" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift.evidently.json", "drift.html", "drift.json"]


def test_nothing_to_judge_writes_only_the_summary(tmp_path: Path) -> None:
    _, short = effect.panel_effects(_panel(n_series=1, days=10), S)
    out = drift_report(effect.summarize(short, 0.1), short, {}, S, tmp_path)
    assert out["status"] == "insufficient_data" and out["evidently_json_path"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift.html", "drift.json"]
    page = (tmp_path / "drift.html").read_text()
    assert "No series could be judged yet" in page and "50 days of history in all" in page
    assert math.isclose(json.loads((tmp_path / "drift.json").read_text())["drift_share_threshold"], 0.1)


def test_sub_hourly_series_are_judged_on_the_same_hourly_windows() -> None:
    """Drift compares hour-of-week profiles of hourly means whatever the model's step: a 30-minute
    series (each hour's two half-hours around its hourly value) gives the hourly series' statistics."""
    hourly = generate(DataConfig(n_series=2, days=70))
    halves = []
    for offset, shift in ((pd.Timedelta(0), 1.0), (pd.Timedelta(minutes=30), -1.0)):
        part = hourly.copy()
        part[TIMESTAMP] = pd.to_datetime(part[TIMESTAMP], utc=True) + offset
        part[LOAD] = part[LOAD] + shift  # the mean of the two half-hours is the hourly value
        halves.append(part)
    half_hourly = pd.concat(halves).sort_values([SERIES_ID, TIMESTAMP], kind="stable").reset_index(drop=True)
    end_h, by_hour = effect.panel_effects(hourly, S)
    end_m, by_half = effect.panel_effects(half_hourly, S)
    assert end_h == end_m and set(by_hour) == set(by_half)
    for sid in by_hour:
        assert {"level", "misfit", "clock"} <= set(by_hour[sid]["stats"])
        for stat, res in by_hour[sid]["stats"].items():
            assert by_half[sid]["stats"][stat]["value"] == pytest.approx(res["value"], rel=1e-9, abs=1e-12), stat
