"""Realized accuracy: the service's forecast log (written by its own writer, on SQLite and
PostgreSQL) joined with real actuals; the decay signal in the retrain loop; the Prometheus gauges.

PostgreSQL runs when FLUXORA_TEST_POSTGRES_URL is set; each test uses its own schema, dropped after.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from conftest import TINY_OVERRIDES as TINY
from conftest import postgres_schema
from fluxora import servicedb as db
from fluxora.api.forecast_log import ForecastLogWriter
from fluxora.config import compose
from fluxora.data import io
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.monitoring import accuracy, loop
from fluxora.paths import ACCURACY_REPORT, DECISIONS_FILE, Home

ORIGIN = datetime(2026, 3, 10, 12, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated service database, as a URL the monitoring step can be configured with."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'serving' / 'fluxora.db'}"
        engine = db.make_engine(url)
        db.migrate(engine)
        engine.dispose()
        yield url
        return
    with postgres_schema("fluxora_acc") as (base, schema):
        # libpq's `options` puts the schema on the search path, so a plain URL reaches it.
        url = f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
        engine = db.make_engine(url)
        db.migrate(engine)
        engine.dispose()
        yield url


def _row(series: str, origin: datetime, values: list[float], **over: Any) -> dict[str, Any]:
    return {
        "served_at": origin + timedelta(minutes=3),
        "series_id": series,
        "origin": origin,
        "horizon": len(values),
        "values": values,
        "quantiles": None,
        "model_version": "4",
        "consumer": "key:test",
        "endpoint": "get_forecast",
        "request_id": None,
        "latency_ms": 1.0,
    } | over


def _write(url: str, rows: list[dict[str, Any]]) -> None:
    """Through the service's own writer, as a running service would."""
    engine = db.make_engine(url)
    writer = ForecastLogWriter(engine, flush_s=60.0)
    writer.start()
    writer.submit(rows)
    writer.close()
    assert writer.written == len(rows) and writer.dropped == 0
    engine.dispose()


def _actuals(series: str, start: datetime, end: datetime, load: Any) -> pd.DataFrame:
    ts = pd.date_range(start, end, freq="h", tz="UTC")
    values = load(np.arange(len(ts))) if callable(load) else np.full(len(ts), load, dtype="float64")
    return pd.DataFrame({SERIES_ID: series, TIMESTAMP: ts, LOAD: values, TEMPERATURE: 10.0})


def _report(url: str, actuals: pd.DataFrame, out: Path, min_points: int = 1, threshold: float = 1.0) -> dict[str, Any]:
    log, note = accuracy.load_log(url)
    return accuracy.accuracy_report(
        log, actuals, out, min_points=min_points, interval=(0.1, 0.9), mae_ratio_threshold=threshold, note=note
    )


def test_hand_computed_mae_mape_coverage_matured_and_pending(log_url: str, tmp_path: Path) -> None:
    # Actuals: load = 100 + hour index, up to ORIGIN + 2 h; the forecast runs to ORIGIN + 4 h.
    start = ORIGIN - timedelta(days=8)
    actuals = _actuals("a", start, ORIGIN + 2 * H, lambda i: 100.0 + i)
    y1, y2 = 100.0 + 193, 100.0 + 194  # actuals at ORIGIN + 1 h and + 2 h (ORIGIN is index 192)
    quantiles = {"0.1": [y1 - 1, y2 + 1, 0.0, 0.0], "0.5": [y1, y2, 0.0, 0.0], "0.9": [y1 + 1, y2 + 3, 1.0, 1.0]}
    row = _row("a", ORIGIN, [y1 + 4, y2 - 10, 500.0, 600.0], quantiles=quantiles)
    _write(log_url, [row, row | {"served_at": ORIGIN + 30 * H / 60}])  # served twice: counts once
    rep = _report(log_url, actuals, tmp_path)

    assert rep["status"] == "ok"
    assert rep["forecasts"] == {"served": 2, "distinct": 1, "with_matured_points": 1}
    assert rep["points"] == {"matured": 2, "pending": 2, "missing": 0}
    o = rep["overall"]
    assert o["mae"] == pytest.approx((4 + 10) / 2)
    assert o["mape"] == pytest.approx((4 / y1 + 10 / y2) / 2 * 100)
    # step 1: y1 in [y1-1, y1+1] -> inside; step 2: y2 in [y2+1, y2+3] -> outside
    assert o["coverage"] == pytest.approx(0.5) and o["interval_points"] == 2
    assert rep["by_step"]["1"]["mae"] == pytest.approx(4) and rep["by_step"]["1"]["coverage"] == 1.0
    assert rep["by_step"]["2"]["mae"] == pytest.approx(10) and rep["by_step"]["2"]["coverage"] == 0.0
    assert rep["by_step"]["3"]["status"] == "insufficient_data" and rep["by_step"]["3"]["pending"] == 1
    assert rep["by_series"]["a"]["mae"] == pytest.approx(7)
    assert rep["by_origin_day"] == {"2026-03-10": rep["overall"]}
    assert rep["by_model_version"]["4"]["matured"] == 2
    # Seasonal naive from the same origin: 24 h back -> error 24 each; 168 h back -> error 168 each.
    assert rep["baselines"]["naive_daily"] == {"points": 2, "mae": 7.0, "naive_mae": 24.0, "mae_ratio": 7 / 24}
    assert rep["baselines"]["naive_weekly"]["naive_mae"] == pytest.approx(168.0)
    assert rep["decay"]["baseline"] == "naive_daily" and rep["decay"]["mae_ratio"] == pytest.approx(7 / 24)
    assert rep["decay"]["decayed"] is False
    # Files, same conventions as the drift report.
    saved = json.loads((tmp_path / f"{ACCURACY_REPORT}.json").read_text())
    assert saved["overall"] == rep["overall"]
    assert "Realized accuracy" in (tmp_path / f"{ACCURACY_REPORT}.html").read_text()


def test_missing_actual_inside_the_data_is_not_pending(log_url: str, tmp_path: Path) -> None:
    actuals = _actuals("a", ORIGIN - 2 * H, ORIGIN + 5 * H, lambda i: 50.0 + i)
    actuals = actuals[actuals[TIMESTAMP] != pd.Timestamp(ORIGIN + 2 * H)]  # quarantined hour
    _write(log_url, [_row("a", ORIGIN, [1.0, 2.0, 3.0])])
    rep = _report(log_url, actuals, tmp_path)
    assert rep["points"] == {"matured": 2, "pending": 0, "missing": 1}


def test_new_series_and_thin_data_are_insufficient_not_a_crash(log_url: str, tmp_path: Path) -> None:
    actuals = _actuals("a", ORIGIN - timedelta(days=8), ORIGIN + 30 * H, lambda i: 100.0 + np.sin(i))
    rows = [_row("a", ORIGIN + k * H, [100.0] * 24) for k in range(3)] + [_row("newcomer", ORIGIN, [5.0] * 24)]
    _write(log_url, rows)
    rep = _report(log_url, actuals, tmp_path, min_points=24)
    assert rep["status"] == "ok"
    assert rep["by_series"]["newcomer"]["status"] == "insufficient_data"
    assert rep["by_series"]["newcomer"]["pending"] == 24 and rep["by_series"]["newcomer"]["mae"] is None
    assert rep["series_insufficient"] == ["newcomer"]
    assert rep["by_series"]["a"]["status"] == "ok"


def test_single_row_is_insufficient_data(log_url: str, tmp_path: Path) -> None:
    actuals = _actuals("a", ORIGIN - timedelta(days=8), ORIGIN + 5 * H, 80.0)
    _write(log_url, [_row("a", ORIGIN, [81.0])])
    rep = _report(log_url, actuals, tmp_path, min_points=24)
    assert rep["status"] == "insufficient_data" and "1 matured" in rep["reason"]
    assert rep["overall"]["mae"] == pytest.approx(1.0)  # still shown, flagged
    assert rep["decay"]["status"] == "insufficient_data" and rep["decay"]["decayed"] is False


def test_all_nan_actuals_leave_everything_pending(log_url: str, tmp_path: Path) -> None:
    actuals = _actuals("a", ORIGIN - timedelta(days=8), ORIGIN + 30 * H, np.nan)
    _write(log_url, [_row("a", ORIGIN, [1.0] * 24)])
    rep = _report(log_url, actuals, tmp_path)
    assert rep["status"] == "insufficient_data"
    assert rep["points"] == {"matured": 0, "pending": 24, "missing": 0}
    assert rep["overall"]["mae"] is None and rep["overall"]["coverage"] is None


def test_constant_and_zero_actuals(log_url: str, tmp_path: Path) -> None:
    """Constant actuals: MAE fine, naive is exact so no decay verdict. Zero actuals: MAPE undefined."""
    constant = _actuals("a", ORIGIN - timedelta(days=8), ORIGIN + 30 * H, 7.0)
    _write(log_url, [_row("a", ORIGIN, [8.0] * 24)])
    rep = _report(log_url, constant, tmp_path)
    assert rep["overall"]["mae"] == pytest.approx(1.0) and rep["overall"]["mape"] == pytest.approx(100 / 7)
    assert rep["baselines"]["naive_daily"]["naive_mae"] == 0.0
    assert rep["decay"]["status"] == "insufficient_data" and rep["decay"]["mae_ratio"] is None
    zero = _actuals("a", ORIGIN - timedelta(days=8), ORIGIN + 30 * H, 0.0)
    rep = _report(log_url, zero, tmp_path)
    assert rep["overall"]["mae"] == pytest.approx(8.0) and rep["overall"]["mape"] is None
    json.loads((tmp_path / f"{ACCURACY_REPORT}.json").read_text())  # strict JSON, no NaN


def test_empty_log_and_no_database(log_url: str, tmp_path: Path) -> None:
    actuals = _actuals("a", ORIGIN - timedelta(days=2), ORIGIN, 1.0)
    rep = _report(log_url, actuals, tmp_path)
    assert rep["status"] == "insufficient_data" and rep["reason"] == "the forecast log is empty"
    assert rep["points"] == {"matured": 0, "pending": 0, "missing": 0} and rep["by_series"] == {}
    missing = f"sqlite:///{tmp_path / 'never' / 'fluxora.db'}"
    rep = _report(missing, actuals, tmp_path)
    assert rep["status"] == "insufficient_data" and "no forecast log yet" in rep["reason"]
    assert not (tmp_path / "never" / "fluxora.db").exists()  # reading never creates the database


def test_unmigrated_database_has_no_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'blank.db'}"
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE other (x INTEGER)"))
    engine.dispose()
    log, note = accuracy.load_log(url)
    assert log.empty and note is not None and "no forecast_log table" in note


def test_served_after_filters_old_forecasts(log_url: str) -> None:
    _write(log_url, [_row("a", ORIGIN, [1.0]), _row("a", ORIGIN + 48 * H, [2.0])])
    log, _ = accuracy.load_log(log_url, served_after=ORIGIN + 24 * H)
    assert log["values"].tolist() == [[2.0]]
    assert str(log["origin"].dt.tz) == "UTC"


# --- the closed loop: accuracy decay as a retrain signal ------------------------------------------

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
NO_DRIFT = {"status": "ok", "drifted": False, "drift_share": 0.0}
DECAYED = {"status": "ok", "decayed": True, "mae_ratio": 1.6, "threshold": 1.0}
HOLDS = {"status": "ok", "decayed": False, "mae_ratio": 0.7, "threshold": 1.0}
THIN = {"status": "insufficient_data", "decayed": False, "mae_ratio": None, "threshold": 1.0}


@pytest.mark.parametrize(
    ("drift", "acc", "state", "rows", "retrain", "words"),
    [
        (NO_DRIFT, DECAYED, {}, 500, True, "accuracy decay (MAE 1.60x seasonal naive, threshold 1.00) past threshold"),
        (NO_DRIFT, HOLDS, {}, 500, False, "no load drift (share 0.00); accuracy holds (MAE 0.70x"),
        (NO_DRIFT, THIN, {}, 500, False, "no accuracy verdict"),
        (None, DECAYED, {}, 500, True, "accuracy decay"),
        (NO_DRIFT, DECAYED, {"last_trigger_at": (NOW - 2 * H).isoformat()}, 500, False, "accuracy decay (MAE 1.60x"),
        (NO_DRIFT, DECAYED, {}, 3, False, "but only 3 new rows"),
        (
            {"status": "ok", "drifted": True, "drift_share": 0.8, "n_drifted": 4, "n_columns": 5},
            DECAYED,
            {},
            500,
            True,
            "load drift in 4 of 5 series (share 0.80) and accuracy",
        ),
    ],
)
def test_accuracy_decay_feeds_the_retrain_decision(
    drift: dict[str, Any] | None, acc: dict[str, Any], state: dict[str, Any], rows: int, retrain: bool, words: str
) -> None:
    decision = loop.decide(drift, state, rows, NOW, cooldown_hours=24, min_new_rows=24, accuracy=acc)
    assert decision.retrain is retrain
    assert words in decision.reason
    if state:
        assert "cooldown" in decision.reason
    assert decision.mae_ratio == acc["mae_ratio"]


def _monitor_home(tmp_path: Path, error: float, log_url: str | None = None) -> tuple[Home, Any]:
    """A FLUXORA_HOME with 30 days of real synthetic data and a forecast log of its last 3 days,
    written by the service's writer: the actual load plus `error` (alternating sign when
    `alternate`), the last actual for targets not yet observed. Seasonal naive MAE is ~17-23 here."""
    from fluxora.config import DataConfig
    from fluxora.data.synthetic import generate

    home = Home(tmp_path / "home").ensure()
    data = generate(DataConfig(n_series=2, days=30))
    io.write_parquet(data, home.validated_data)
    url = log_url or home.service_database_url
    if log_url is None:
        engine = db.make_engine(url)
        db.migrate(engine)
        engine.dispose()
    end = data[TIMESTAMP].max()
    by_key = data.set_index([SERIES_ID, TIMESTAMP])[LOAD]
    rows = []
    for sid in ("series_000", "series_001"):
        last = float(by_key[(sid, end)])
        for k in range(72, 0, -6):
            origin = end - pd.Timedelta(hours=k)
            targets = [origin + pd.Timedelta(hours=s) for s in range(1, 25)]
            values = [float(by_key.get((sid, t), last)) + error * (-1) ** s for s, t in enumerate(targets)]
            rows.append(_row(sid, origin.to_pydatetime(), values, served_at=datetime.now(UTC)))
    _write(url, rows)
    overrides = ["monitor.current_days=7", "monitor.reference_days=14", "monitor.accuracy_days=30"]
    if log_url is not None:
        overrides.append(f"infra.database_url='{log_url}'")
    return home, compose(overrides)


def test_monitor_step_triggers_retrain_on_accuracy_decay(log_url: str, tmp_path: Path) -> None:
    from fluxora import steps

    # The default service database under the home on SQLite; the configured URL on PostgreSQL.
    home, cfg = _monitor_home(tmp_path, error=60.0, log_url=None if "sqlite" in log_url else log_url)
    out = steps.monitor(cfg, home).outputs()
    acc = out["accuracy"]
    assert acc["status"] == "ok" and acc["points"]["matured"] > 24 and acc["points"]["pending"] > 0
    assert acc["decay"]["decayed"] is True and acc["decay"]["mae_ratio"] > 1.0
    decision = out["decision"]
    if out["drifted"]:  # synthetic data may drift as well; the reason names every signal
        assert "drift" in decision["reason"]
    assert decision["retrain"] is True and "accuracy decay" in decision["reason"]
    assert decision["accuracy_decayed"] is True
    logged = [json.loads(x) for x in (home.reports / DECISIONS_FILE).read_text().splitlines()]
    assert logged[-1]["reason"] == decision["reason"]
    realized = json.loads((home.monitor_metrics / "accuracy.json").read_text())
    assert realized["mae"] == pytest.approx(acc["mae"], abs=1e-4) and realized["points_matured"] > 24
    assert json.loads((home.monitor_metrics / "drift.json").read_text())["retrain"] == 1

    # Guardrail: after a trigger, the cooldown holds the next one back and says why.
    loop.mark_triggered(home.reports, decision["at"], out["data_end"])
    again = steps.monitor(cfg, home).outputs()["decision"]
    assert again["retrain"] is False and "accuracy decay" in again["reason"] and "cooldown" in again["reason"]


def test_monitor_step_good_forecasts_do_not_decay(tmp_path: Path) -> None:
    from fluxora import steps
    from fluxora.cli.render import status_text
    from fluxora.status import _accuracy

    home, cfg = _monitor_home(tmp_path, error=2.0)
    out = steps.monitor(cfg, home).outputs()
    assert out["accuracy"]["mae"] == pytest.approx(2.0)
    assert out["accuracy"]["decay"]["decayed"] is False and out["accuracy"]["decay"]["mae_ratio"] < 0.5
    assert "accuracy decay" not in out["decision"]["reason"]
    acc = _accuracy(home)
    assert acc is not None and acc["status"] == "ok"
    text = status_text({"home": str(home.root), "champion": None, "online_store": None, "drift": None, "accuracy": acc})
    assert "realized MAE" in text and "matured" in text
    # Rows logged without a vintage (a model that reads no weather forecast) are all "without".
    assert "with a weather forecast: insufficient data (0 matured points)" in text
    assert "without: MAE 2.000" in text
    metrics = json.loads((home.monitor_metrics / "accuracy.json").read_text())
    assert metrics["mae_with_forecast"] is None and metrics["mae_without_forecast"] == pytest.approx(2.0)


def test_monitor_step_without_a_forecast_log(tmp_path: Path) -> None:
    from fluxora import steps
    from fluxora.cli.render import status_text
    from fluxora.config import DataConfig
    from fluxora.data.synthetic import generate
    from fluxora.status import _accuracy

    home = Home(tmp_path).ensure()
    io.write_parquet(generate(DataConfig(n_series=1, days=20)), home.validated_data)
    out = steps.monitor(compose(), home).outputs()
    assert out["accuracy"]["status"] == "insufficient_data" and "no forecast log yet" in out["accuracy"]["reason"]
    assert out["decision"]["accuracy_decayed"] is None and "accuracy decay" not in out["decision"]["reason"]
    assert (home.reports / "accuracy.html").is_file()
    assert not (home.root / "serving" / "fluxora.db").exists()
    text = status_text(
        {"home": str(home.root), "champion": None, "online_store": None, "drift": None, "accuracy": _accuracy(home)}
    )
    assert "accuracy      insufficient data: no forecast log yet" in text


# --- end to end: forecasts served by the real service, scored by the real monitor step -----------


def test_forecasts_served_by_the_service_are_scored(tiny_cfg: Any, trained_home: Home, tmp_path: Path) -> None:
    """/v1/predict from a past origin (its offline state) and /v1/forecast from the latest one, both
    with the 0.1/0.9 quantiles, logged by the service; the monitor step scores the first (matured)
    against the validated data and counts the second as pending; the reports go to MLflow."""
    import mlflow
    import pyarrow.parquet as pq
    from fastapi.testclient import TestClient
    from serving_support import key_headers, settings_for

    from fluxora import steps
    from fluxora.api.app import create_app
    from fluxora.features import store as fs
    from fluxora.features.names import EVENT_TIMESTAMP, LOAD_HISTORY, TEMP_HISTORY

    series, horizon = "series_000", 24
    table = pq.read_table(fs.offline_path(trained_home)).to_pandas()
    table = table[table[SERIES_ID] == series].sort_values(EVENT_TIMESTAMP)
    past = table.iloc[-49]  # 48 hours before the latest state: all 24 targets have actuals
    origin = pd.Timestamp(past[EVENT_TIMESTAMP]).tz_convert("UTC")
    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(settings_for(tiny_cfg, trained_home, database_url=url))
    levels = [0.1, 0.9]
    with TestClient(app) as c:
        headers = key_headers(app)
        features = {name: np.asarray(past[name], dtype="float64").tolist() for name in (LOAD_HISTORY, TEMP_HISTORY)}
        body = {
            "instances": [{"series_id": series, "origin": origin.isoformat(), "features": features}],
            "horizon": horizon,
            "quantiles": levels,
        }
        served = c.post("/v1/predict", json=body, headers=headers)
        latest = c.get("/v1/forecast", params={"series_id": series, "horizon": 6, "quantiles": levels}, headers=headers)
        assert served.status_code == latest.status_code == 200, served.text
    points = served.json()["forecasts"][0]["points"]

    data = io.read_parquet(trained_home.validated_data)
    actual = data[data[SERIES_ID].astype(str) == series].set_index(TIMESTAMP)[LOAD]
    y = np.array([actual[pd.Timestamp(p["timestamp"])] for p in points])
    f = np.array([p["value"] for p in points])
    lo = np.array([p["quantiles"]["0.1"] for p in points])
    hi = np.array([p["quantiles"]["0.9"] for p in points])

    cfg = compose([*TINY, f"infra.database_url='{url}'", "monitor.accuracy_min_points=24"])
    out = steps.monitor(cfg, trained_home).outputs()
    acc = json.loads(Path(out["accuracy"]["json_path"]).read_text())
    assert acc["points"] == {"matured": horizon, "pending": 6, "missing": 0}
    assert acc["overall"]["mae"] == pytest.approx(np.mean(np.abs(y - f)))
    assert acc["overall"]["mape"] == pytest.approx(np.mean(np.abs(y - f) / np.abs(y)) * 100)
    assert acc["overall"]["coverage"] == pytest.approx(np.mean((y >= lo) & (y <= hi)))
    assert acc["by_series"][series]["pending"] == 6
    assert acc["status"] == "ok" and acc["decay"]["status"] == "ok"

    client = mlflow.MlflowClient(tracking_uri=trained_home.mlflow_tracking_uri)
    logged = {a.path for a in client.list_artifacts(out["logged_to_run"], "reports")}
    assert {"reports/accuracy.json", "reports/accuracy.html"} <= logged


@pytest.mark.parametrize("interval", [[0.1], [0.9, 0.9], [0.1, 1.5], [0.1, 0.5, 0.9]])
def test_bad_interval_is_refused_before_anything_is_written(tmp_path: Path, interval: list[float]) -> None:
    from fluxora import steps

    home = Home(tmp_path).ensure()
    io.write_parquet(_actuals("a", ORIGIN - timedelta(days=20), ORIGIN, 5.0), home.validated_data)
    cfg = compose([f"monitor.accuracy_interval={interval}"])
    with pytest.raises(ValueError, match="accuracy_interval"):
        steps.monitor(cfg, home)
    assert list(home.reports.iterdir()) == []


def test_repeated_points_count_once_and_the_logged_interval_wins(log_url: str, tmp_path: Path) -> None:
    actuals = _actuals("a", ORIGIN - timedelta(days=8), ORIGIN + 30 * H, lambda i: 100.0 + i)
    full = [float(v) for v in range(24)]
    bands = {"0.1": [v - 1e6 for v in full[:3]], "0.9": [v + 1e6 for v in full[:3]]}
    rows = [
        _row("a", ORIGIN, full),  # 24 steps, no quantiles
        _row("a", ORIGIN, full[:3], quantiles=bands),  # the same first 3 points, with the interval
        _row("a", ORIGIN, full[:3]),  # and again without
        _row("a", ORIGIN, full, model_version="5"),  # another model: its own points
    ]
    _write(log_url, rows)
    rep = _report(log_url, actuals, tmp_path)
    assert rep["forecasts"]["served"] == 4 and rep["forecasts"]["distinct"] == 2
    assert rep["points"]["matured"] == 48
    assert rep["overall"]["interval_points"] == 3 and rep["overall"]["coverage"] == 1.0
    assert rep["by_model_version"]["4"]["matured"] == rep["by_model_version"]["5"]["matured"] == 24


def test_monitor_step_imports_no_service_code(tmp_path: Path) -> None:
    """The monitoring flow reads the forecast log through the db models only, never the FastAPI app."""
    import subprocess
    import sys
    import textwrap

    home, _ = _monitor_home(tmp_path, error=1.0)
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from fluxora import steps
        from fluxora.config import compose
        from fluxora.paths import Home
        out = steps.monitor(compose(["monitor.accuracy_days=30"]), Home(Path({str(home.root)!r}))).outputs()
        print(json.dumps({{"matured": out["accuracy"]["points"]["matured"], "modules": sorted(sys.modules)}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["matured"] > 0
    service = {m for m in result["modules"] if m.startswith("fluxora.api.") and m != "fluxora.api.db"}
    assert service == set(), service


def test_matured_forecasts_split_with_and_without_a_weather_forecast(log_url: str, tmp_path: Path) -> None:
    """Issue 12: a forecast counts as made with a weather forecast only when the service logged a
    vintage and no step fell back; a partial fallback and a model without one (null) are without."""
    start = ORIGIN - timedelta(days=8)
    actuals = _actuals("a", start, ORIGIN + 2 * H, lambda i: 100.0 + i)
    y1, y2 = 100.0 + 193, 100.0 + 194
    vintage = ORIGIN - 3 * H
    with_rows = [_row("a", ORIGIN, [y1 + 1, y2 - 1], weather_issued_at=vintage, weather_fallback_steps=0)]
    partial = _row("a", ORIGIN + 0 * H, [y1 + 6, y2 + 6], model_version="5", weather_issued_at=vintage)
    partial["weather_fallback_steps"] = 1  # the vintage covered step 1 only
    persistence = _row("a", ORIGIN - H, [y1 - 1, y2 - 1, y2 + 1], model_version="3")  # logs no weather: null
    _write(log_url, [*with_rows, partial, persistence])
    rep = _report(log_url, actuals, tmp_path, min_points=2)

    w = rep["by_weather"]
    assert set(w) == {"with_forecast", "without_forecast"}
    assert w["with_forecast"]["status"] == "ok" and w["with_forecast"]["forecasts"] == 1
    assert w["with_forecast"]["matured"] == 2 and w["with_forecast"]["mae"] == pytest.approx(1.0)
    # Without: the partial forecast's 2 matured points (error 6) and the persistence one's 3 (from
    # ORIGIN - 1 h: steps 1..3 hit ORIGIN, +1 h, +2 h -> actuals 292, 293, 294; errors 0, 0, 1).
    assert w["without_forecast"]["forecasts"] == 2 and w["without_forecast"]["matured"] == 5
    assert w["without_forecast"]["mae"] == pytest.approx((6 + 6 + 0 + 0 + 1) / 5)
    # The ratio to the better (stricter) seasonal naive, on each group's own points: daily naive errs 24.
    assert w["with_forecast"]["mae_ratio"] == pytest.approx(1.0 / 24)
    assert w["with_forecast"]["baseline"] == "naive_daily"
    assert json.loads((tmp_path / f"{ACCURACY_REPORT}.json").read_text())["by_weather"] == w

    # Too few points in a group: reported as insufficient, with no ratio (not as 0).
    thin = _report(log_url, actuals, tmp_path / "thin", min_points=3)["by_weather"]
    assert thin["with_forecast"]["status"] == "insufficient_data" and thin["with_forecast"]["mae_ratio"] is None
    assert thin["without_forecast"]["status"] == "ok"


def test_a_30_minute_champion_is_scored_at_its_own_step(tmp_path: Path) -> None:
    """Step k of a 30-minute forecast targets origin + k x 30 min; the seasonal naive is a day
    (48 steps) and a week (336 steps) back; each step names its lead time, and the dashboard's
    "MAE step 01" is the 1-hour lead (step 2) as for an hourly model."""
    from fluxora.data.resolution import Resolution
    from fluxora.monitoring import history

    half = timedelta(minutes=30)
    ts = pd.date_range(ORIGIN - timedelta(days=8), ORIGIN + 2 * H, freq="30min", tz="UTC")
    actuals = pd.DataFrame({SERIES_ID: "a", TIMESTAMP: ts, LOAD: 100.0 + np.arange(len(ts)), TEMPERATURE: 10.0})
    at = {t: 100.0 + i for i, t in enumerate(ts)}
    truth = [at[pd.Timestamp(ORIGIN + k * half)] for k in (1, 2, 3, 4)]
    log = pd.DataFrame(
        [
            {
                "id": 1,
                "served_at": ORIGIN,
                SERIES_ID: "a",
                "origin": pd.Timestamp(ORIGIN),
                "model_version": "7",
                "values": [truth[0] + 1, truth[1] - 2, truth[2] + 3, truth[3] - 4, 0.0, 0.0],
                "quantiles": None,
                "weather_issued_at": None,
                "weather_fallback_steps": None,
            }
        ]
    )
    rep = accuracy.accuracy_report(
        log,
        actuals,
        tmp_path,
        min_points=1,
        interval=(0.1, 0.9),
        mae_ratio_threshold=1.0,
        resolution=Resolution.parse("30min"),
    )
    assert rep["resolution"] == "30min"
    assert rep["points"] == {"matured": 4, "pending": 2, "missing": 0}  # 4 half-hours up to ORIGIN + 2 h
    assert rep["overall"]["mae"] == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert [rep["by_step"][k]["lead_hours"] for k in ("1", "2", "4")] == [0.5, 1.0, 2.0]
    assert rep["by_step"]["2"]["mae"] == pytest.approx(2.0)
    # The load grows by 1 a half-hour: a day back is 48 lower, a week back 336.
    assert rep["baselines"]["naive_daily"]["naive_mae"] == pytest.approx(48.0)
    assert rep["baselines"]["naive_weekly"]["naive_mae"] == pytest.approx(336.0)
    tabs = history.figures({}, {}, rep, None, 10)
    assert tabs["Accuracy"]["MAE step 01"] == pytest.approx(2.0)  # lead 1 h = step 2
    assert tabs["Accuracy"]["MAE step 02"] == pytest.approx(4.0)  # lead 2 h = step 4
    assert "MAE step 03" not in tabs["Accuracy"]  # step 3 is 1.5 h: not a recorded lead


def test_hourly_steps_are_their_lead_hours() -> None:
    joined = accuracy.join_actuals(
        accuracy.forecast_points(
            pd.DataFrame(
                [{SERIES_ID: "a", "origin": ORIGIN, "model_version": "1", "values": [1.0, 2.0], "quantiles": None}]
            ),
            (0.1, 0.9),
        ),
        _actuals("a", ORIGIN - timedelta(days=8), ORIGIN + 2 * H, 5.0),
    )
    assert list(joined["target"]) == [pd.Timestamp(ORIGIN + H), pd.Timestamp(ORIGIN + 2 * H)]
    assert (joined["naive_daily"] == 5.0).all() and (joined["naive_weekly"] == 5.0).all()


def test_the_monitor_scores_at_the_data_step_before_any_champion(tmp_path: Path) -> None:
    from fluxora.data.frames import data_resolution
    from fluxora.steps.monitor import champion_resolution

    home = Home(tmp_path / "home").ensure()
    cfg = compose(TINY)
    ts = pd.date_range(ORIGIN, periods=8, freq="30min", tz="UTC")
    data = pd.DataFrame({SERIES_ID: "a", TIMESTAMP: ts, LOAD: 1.0, TEMPERATURE: 10.0})
    assert champion_resolution(cfg, home, data_resolution(data)).name == "30min"
    assert champion_resolution(cfg, home, data_resolution(data.iloc[::2])).name == "h"


def test_the_monitor_in_series_batches_equals_one_pass(tmp_path: Path) -> None:
    """The monitor reads the validated table `data.batch_series` series at a time: every
    per-series verdict, the realized accuracy and the data ends equal one pass over the table."""
    from fluxora import steps
    from fluxora.config import DataConfig
    from fluxora.data.synthetic import generate

    def run(home: Home, overrides: list[str], batch: int) -> tuple[dict[str, Any], dict[str, Any]]:
        out = steps.monitor(compose([*overrides, f"data.batch_series={batch}"]), home).outputs()
        (home.reports / DECISIONS_FILE).unlink(missing_ok=True)  # the next run decides afresh
        series = json.loads(home.drift_series.read_text())
        accuracy = json.loads(Path(out["accuracy"]["json_path"]).read_text())
        keep = ("overall", "points", "by_series", "by_step", "decay")
        return {"series": series["series"], "windows": series["windows"], "drifted": out["series_drifted"]}, {
            k: accuracy[k] for k in keep
        }

    # Drift: 5 series x 20 weeks, enough history for verdicts; batches of 2 series and one pass.
    home = Home(tmp_path / "drift").ensure()
    data = generate(DataConfig(n_series=5, days=140))
    stamps, ids = data[TIMESTAMP], data[SERIES_ID]
    # Spans that differ: the latest hour and the first are the table's, not a batch's.
    late = (ids == "series_003") & (stamps < stamps.max() - pd.Timedelta(days=20))  # a newcomer
    short = (ids == "series_004") & (stamps > stamps.max() - pd.Timedelta(days=2))  # ends early
    io.write_parquet(data[~(late | short)].reset_index(drop=True), home.validated_data)
    base = ["monitor.current_days=7", "monitor.reference_days=14"]
    batched, _ = run(home, base, 2)
    whole, _ = run(home, base, 0)
    assert batched == whole
    status = {sid: r["status"] for sid, r in whole["series"].items()}
    # series_004 (alone in the last batch) has no data in the current window at the table's end.
    assert status == {"series_000": "ok", "series_001": "ok", "series_002": "ok", "series_003": "new"}

    # Realized accuracy: the forecast log of two series, scored a series at a time.
    home, _ = _monitor_home(tmp_path / "acc", error=60.0)
    overrides = ["monitor.current_days=7", "monitor.reference_days=14", "monitor.accuracy_days=30"]
    _, acc_batched = run(home, overrides, 1)
    _, acc_whole = run(home, overrides, 0)
    assert acc_batched == acc_whole and acc_whole["points"]["matured"] > 24
