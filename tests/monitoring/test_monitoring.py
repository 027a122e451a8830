"""Monitoring: the retrain decision, the monitor step on too little and on pipeline data, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from fluxora.config import DataConfig, compose
from fluxora.data.synthetic import generate
from fluxora.monitoring import loop


def _data(days: int, n_series: int = 2) -> pd.DataFrame:
    return generate(DataConfig(n_series=n_series, days=days))


NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
DRIFT = {"status": "ok", "drifted": True, "drift_share": 1.0, "n_drifted": 2, "n_columns": 2}
QUIET = {"status": "ok", "drifted": False, "drift_share": 0.0, "weather": {"series_drifted": ["a", "b"]}}


@pytest.mark.parametrize(
    ("drift", "state", "rows", "retrain", "words"),
    [
        (None, {}, 500, False, "insufficient"),
        ({"status": "insufficient_data", "drifted": False, "drift_share": None}, {}, 500, False, "insufficient"),
        ({"status": "ok", "drifted": False, "drift_share": 0.0}, {}, 500, False, "no load drift"),
        (QUIET, {}, 500, False, "no load drift"),  # weather drift alone asks for nothing
        ({**QUIET, "new_series": {"m9": "2026-11-25T00:00:00+00:00"}}, {}, 500, True, "1 new series (m9)"),
        (
            {**QUIET, "new_series": {"m9": "2026-11-25T00:00:00+00:00"}},
            {"last_trigger_at": (NOW - timedelta(hours=30)).isoformat(), "data_end": "2026-11-25 12:00:00+00:00"},
            500,
            False,
            "no load drift",
        ),  # seen by the last retrain already
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
    import dataclasses

    from fluxora import steps

    # The tiny data (45 days) are too short for a 7-day window; a 2-day one with 2 fit weeks fits.
    cfg = dataclasses.replace(
        tiny_cfg, monitor=dataclasses.replace(tiny_cfg.monitor, current_days=2, reference_weeks=2)
    )
    result = steps.monitor(cfg, trained_home).outputs()
    assert result["status"] == "ok" and result["drifted"] is False and result["series_drifted"] == []
    assert result["windows"]["kind"] == "own_history" and result["windows"]["fit_weeks"] == 2
    assert Path(result["series_json"]).is_file() and Path(result["html"]).is_file()
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
    assert drift["new_series"] == {} and drift["weather"]["series_drifted"] == []
