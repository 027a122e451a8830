"""A fast CLI: `fluxora --help` and `fluxora status` import none of the heavy libraries, and status's
light reads (MLflow's SQLite store, Feast's SQLite online store) answer what MLflow and Feast answer."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from fluxora import registry, status
from fluxora.cli.service import ACCESS_LOGGER, JsonLines, PlainLines
from fluxora.features import store as fs
from fluxora.paths import Home

HEAVY = ("feast", "mlflow", "evidently", "prefect", "pandas", "xgboost", "sklearn", "optuna")

# Runs the command in-process, then reports which heavy top-level packages it imported.
_PROBE = """
import json, os, sys
from fluxora.cli import main
HEAVY = os.environ["FLUXORA_PROBE_HEAVY"]
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def _probe(argv: list[str], home: Home) -> tuple[dict[str, object], str]:
    env = os.environ | {"FLUXORA_HOME": str(home.root), "FLUXORA_PROBE_HEAVY": json.dumps(HEAVY)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout


def test_help_imports_no_heavy_library(tmp_path) -> None:
    result, out = _probe(["--help"], Home(tmp_path))
    assert result == {"code": 0, "heavy": []}
    assert "status" in out


def test_status_on_a_trained_home_imports_no_heavy_library(trained_home: Home) -> None:
    result, out = _probe(["status", "--json"], trained_home)
    assert result == {"code": 0, "heavy": []}
    report = json.loads(out)
    assert set(report) == {
        "home",
        "champion",
        "promotions",
        "online_store",
        "staleness",
        "weather_forecast",
        "drift",
        "accuracy",
    }
    assert report["weather_forecast"] is None  # no forecast source configured
    assert report["champion"]["version"] and report["online_store"]
    # The test data end in 2024: past the default two days, every series is stale.
    assert report["staleness"]["stale"] and set(report["staleness"]["stale"]) == set(report["online_store"])


def test_status_flags_stale_series_and_says_why(trained_home: Home, tiny_cfg) -> None:
    online = status._freshness(tiny_cfg, trained_home)
    assert online
    result, out = _probe(["status", "serve.max_feature_age_hard_s=8640000"], trained_home)  # 100 days
    assert result["code"] == 0
    now = datetime.now(UTC)
    for sid, ts in online.items():
        days = (now - datetime.fromisoformat(ts)).total_seconds() / 86_400
        line = next(x for x in out.splitlines() if x.strip().startswith(sid))
        assert ("REFUSED" if days > 100 else "STALE") in line and f"({days:.1f} days old)" in line, line
    note = next(x for x in out.splitlines() if "series stale: features are" in x)
    assert f"{len(online)} of {len(online)} series stale" in note
    assert "the sample data is historical" in note and "serve.max_feature_age_s=0" in note


def test_staleness_follows_the_limit(trained_home: Home, tiny_cfg) -> None:
    from dataclasses import replace

    online = status._freshness(tiny_cfg, trained_home)
    assert online
    newest = max(datetime.fromisoformat(ts) for ts in online.values())
    oldest = min(datetime.fromisoformat(ts) for ts in online.values())
    cfg = replace(tiny_cfg, serve=replace(tiny_cfg.serve, max_feature_age_s=3600.0))
    fresh = status.staleness(cfg, online, oldest)  # "now" at the oldest origin: nothing is an hour old
    assert fresh is not None and fresh["stale"] == [] and fresh["note"] is None
    later = status.staleness(cfg, online, newest.replace(year=newest.year + 1))
    assert later is not None and set(later["stale"]) == set(online) and "sample data is historical" in later["note"]
    off = replace(cfg, serve=replace(cfg.serve, max_feature_age_s=0.0))
    assert status.staleness(off, online, newest.replace(year=newest.year + 1))["stale"] == []  # type: ignore[index]


def test_light_registry_reads_match_mlflow(trained_home: Home, tiny_cfg) -> None:
    name = tiny_cfg.train.registered_model_name
    light, mlflow_read = registry.read_champion(trained_home, name), registry.champion(trained_home, name)
    assert light is not None and light == mlflow_read
    assert registry.read_history(trained_home, name) == registry.history(trained_home, name)
    assert registry.read_champion(trained_home, "no-such-model") is None
    assert registry.read_history(trained_home, "no-such-model") == []


def test_light_freshness_matches_feast(trained_home: Home, tiny_cfg) -> None:
    light = status._freshness(tiny_cfg, trained_home)
    assert light and all(light.values())
    assert light == status._freshness_feast(tiny_cfg, trained_home)


def test_offline_series_are_kept_for_the_file_they_were_read_from(tmp_path) -> None:
    """The series list (pyarrow's import and a column read: ~1 s) is cached for the file's stamp."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    offline, cache = tmp_path / "origin_state.parquet", tmp_path / "cache" / status.SERIES_CACHE
    pq.write_table(pa.table({"series_id": ["b", "a", "b"]}), offline)
    assert status._offline_series(offline, cache) == ["a", "b"] and cache.is_file()
    kept = json.loads(cache.read_text())
    cache.write_text(json.dumps(kept | {"series": ["from-the-cache"]}))
    assert status._offline_series(offline, cache) == ["from-the-cache"]  # the file was not read
    pq.write_table(pa.table({"series_id": ["c", "c"]}), offline)  # the features step rewrote it
    os.utime(offline, ns=(kept["file"]["mtime_ns"] + 10**9,) * 2)
    assert status._offline_series(offline, cache) == ["c"]
    cache.write_text('{"file": ')  # half-written: read the file
    assert status._offline_series(offline, cache) == ["c"]
    assert status._offline_series(offline, tmp_path / "no" / "x" / "y.json") == ["c"]


def test_entity_key_is_feasts() -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    for sid in ("series_000", "Zürich-Nord", ""):
        proto = EntityKey(join_keys=["series_id"], entity_values=[Value(string_val=sid)])
        key = serialize_entity_key(proto, entity_key_serialization_version=3)
        assert status.entity_key(sid) == key
        assert status._series_of(key) == sid


@pytest.mark.parametrize("stamp", [1707951600, 1707951600.0, "2024-02-14 23:00:00", "2024-02-14T23:00:00+00:00"])
def test_online_timestamps_are_utc(stamp: int | float | str) -> None:
    assert status._utc(stamp) == datetime(2024, 2, 14, 23, tzinfo=UTC)


def test_empty_home_reads_nothing(tmp_path, tiny_cfg) -> None:
    home = Home(tmp_path).ensure()
    assert registry.read_champion(home, "m") is None and registry.read_history(home, "m") == []
    assert status.collect(tiny_cfg, home)["online_store"] is None


# Output: no colour or control codes where output is not a terminal.


def test_plain_lines_strip_colour_and_redrawn_bars() -> None:
    out = io.StringIO()
    plain = fs.PlainLines(out)
    plain.write("\x1b[1m\x1b[32mweather\x1b[0m:\n  0%|   | 0/2\r 50%|#  | 1/2")
    plain.write("\r100%|###| 2/2\n")
    plain.write("tail without newline")
    plain.finish()
    assert out.getvalue() == "weather:\n100%|###| 2/2\ntail without newline\n"


def test_materialization_output_is_plain_when_redirected(
    trained_home: Home, tiny_cfg, capfd: pytest.CaptureFixture[str]
) -> None:
    latest = max(datetime.fromisoformat(ts) for ts in status._freshness_feast(tiny_cfg, trained_home).values())
    fs.materialize(fs.open_store(trained_home), latest, latest)  # the same latest rows again: a no-op for readers
    out, err = capfd.readouterr()
    assert "origin_state:" in out
    assert "\x1b" not in out + err and "\r" not in out + err


def _record(name: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)


def test_service_log_formats() -> None:
    access = json.dumps(
        {"event": "request", "method": "GET", "path": "/v1/forecast", "status": 200, "duration_ms": 1.25}
    )
    as_json = json.loads(JsonLines().format(_record(ACCESS_LOGGER, access)))
    assert as_json["path"] == "/v1/forecast" and as_json["level"] == "INFO" and as_json["logger"] == ACCESS_LOGGER
    assert json.loads(JsonLines().format(_record("uvicorn.error", "Started server process [1]")))["message"] == (
        "Started server process [1]"
    )
    plain = PlainLines().format(_record(ACCESS_LOGGER, access))
    assert plain.endswith(f"INFO    {ACCESS_LOGGER}: GET /v1/forecast 200 1.2 ms  id=None") and "{" not in plain
    assert PlainLines().format(_record("uvicorn.error", "Started")).endswith("INFO    uvicorn.error: Started")


def test_run_summary_says_when_the_data_are_older_than_the_staleness_limit() -> None:
    from fluxora.cli.render import _old_data_line

    (line,) = _old_data_line("2024-02-14 23:00:00+00:00", 172_800.0)
    days = (datetime.now(UTC) - datetime(2024, 2, 14, 23, tzinfo=UTC)).total_seconds() / 86_400
    assert f"the data end {days:.0f} days ago" in line and "stale: true" in line
    assert _old_data_line(datetime.now(UTC).isoformat(), 172_800.0) == []  # fresh data: nothing to say
    assert _old_data_line("2024-02-14 23:00:00+00:00", 0.0) == []  # the check is off
    assert _old_data_line(None, 172_800.0) == []


def test_tune_help_and_show_import_no_heavy_library(tmp_path) -> None:
    """`fluxora tune --help` and `tune --show` (what `fluxora run $(fluxora tune --show)` runs) are fast."""
    home = Home(tmp_path)
    result, out = _probe(["tune", "--help"], home)
    assert result == {"code": 0, "heavy": []} and "tuned/xgboost.yaml" in out
    result, _ = _probe(["tune", "--show"], home)
    assert result == {"code": 1, "heavy": []}  # no result yet: an error, not a traceback
    home.tuned("xgboost").parent.mkdir(parents=True)
    home.tuned("xgboost").write_text("overrides: [model.max_depth=4, model.learning_rate=0.1]\n")
    result, out = _probe(["tune", "--show"], home)
    assert result == {"code": 0, "heavy": []} and out.strip() == "model.max_depth=4 model.learning_rate=0.1"
