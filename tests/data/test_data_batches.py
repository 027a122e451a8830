"""Ingest and the gate in batches of series (`data.batch_series`): the same verdict, figures and
files as one run over all the data, on data with every kind of fault, in any row order."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fluxora import steps
from fluxora.config import DataConfig, FluxoraConfig, GateConfig
from fluxora.data.errors import GateFailedError
from fluxora.data.gate import CHECK, run_gate
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.sources import ISSUE
from fluxora.data.synthetic import generate
from fluxora.errors import ConfigError
from fluxora.paths import Home

SIZES = (0, 1, 7)


def _faulty() -> pd.DataFrame:
    """20 synthetic series with gaps and spikes, plus one of each fault the gate knows, shuffled."""
    cfg = DataConfig(n_series=20, days=20, missing_stretches=2, outliers=2, holidays_country="")
    df = generate(cfg).assign(**{ISSUE: None}).astype({ISSUE: object})
    df[SERIES_ID] = df[SERIES_ID].astype(object)
    df = pd.concat([df, df[df[SERIES_ID] == "series_003"].iloc[[5, 6]]], ignore_index=True)  # duplicates
    sid = df[SERIES_ID]
    df.loc[df.index[sid == "series_004"][10], LOAD] = -5.0  # negative
    df.loc[df.index[sid == "series_005"][[20, 21]], LOAD] = np.nan  # non-finite
    df.loc[df.index[sid == "series_006"][30], TIMESTAMP] += pd.Timedelta(minutes=7)  # off the grid
    df.loc[df.index[sid == "series_007"][40:80], LOAD] = 123.0  # a stuck meter
    df.loc[sid == "series_008", TEMPERATURE] = np.nan  # no temperature at all
    df.loc[sid == "series_011", TEMPERATURE] = np.nan  # another load-only series
    df.loc[df.index[sid == "series_009"][[50, 51]], TEMPERATURE] = np.nan  # missing weather
    df = df[(df[SERIES_ID] != "series_010") | (df[TIMESTAMP] < df[TIMESTAMP].min() + pd.Timedelta(days=3))]
    df = df.reset_index(drop=True)  # series_010 is too short
    df.loc[[100, 2000], SERIES_ID] = ["", None]  # rows of no series
    df.loc[[300, 4000], TIMESTAMP] = pd.NaT
    df.loc[[300, 4000], ISSUE] = ["unparseable timestamp: x", "unparseable timestamp: y"]
    df.loc[[500, 5000], LOAD] = np.nan
    df.loc[[500, 5000], ISSUE] = ["non-numeric load: n/a", "non-numeric load: -"]
    return df.sample(frac=1.0, random_state=3).reset_index(drop=True)  # rows in no particular order


@pytest.fixture(scope="module")
def faulty() -> pd.DataFrame:
    return _faulty()


GATE = GateConfig(min_series_days=7, no_weather="load_only")


def test_batches_of_one_seven_and_all_give_the_same_result(faulty: pd.DataFrame) -> None:
    results = {size: run_gate(faulty, GATE, batch_series=size) for size in SIZES}
    base = results[0]
    checks = base.report["checks"]
    found = [name for name, r in checks.items() if r["found"]]
    assert len(found) >= 12, found  # the data exercises almost every check
    assert base.report["rows_in"] == base.report["rows_out"] + base.report["rows_quarantined"] == len(faulty)
    for size in SIZES[1:]:
        res = results[size]
        assert res.report == base.report, size
        pd.testing.assert_frame_equal(res.data, base.data)
        pd.testing.assert_frame_equal(res.quarantine, base.quarantine)
        pd.testing.assert_frame_equal(res.repairs, base.repairs, check_dtype=False)


@pytest.mark.parametrize(
    "policy",
    [
        {"missing_series_id": "fail"},
        {"bad_timestamps": "fail"},
        {"non_numeric": "fail"},
        {"duplicates": "fail"},
        {"negative": "fail"},
        {"non_finite": "fail"},
        {"no_weather": "fail"},
        {"gaps": "fail"},
        {"too_short": "fail", "gaps": "repair"},
        {"flat_lines": "fail", "negative": "fail"},  # the earlier check in the run is the one reported
        {"min_series_days": 400.0},  # nothing passes: non_empty names the main reason
    ],
)
def test_a_failing_gate_fails_the_same_way_in_batches(faulty: pd.DataFrame, policy: dict[str, object]) -> None:
    cfg = replace(GATE, **policy)  # type: ignore[arg-type]
    errors = {}
    for size in SIZES:
        with pytest.raises(GateFailedError) as info:
            run_gate(faulty, cfg, batch_series=size)
        errors[size] = info.value
    base = errors[0]
    for size in SIZES[1:]:
        assert str(errors[size]) == str(base), size
        assert errors[size].report == base.report, size


def _home(tmp_path: Path, name: str) -> Home:
    return Home(tmp_path / name).ensure()


def _cfg(cfg: FluxoraConfig, size: int, **data: object) -> FluxoraConfig:
    return replace(cfg, data=replace(cfg.data, batch_series=size, gate=GATE, **data))  # type: ignore[arg-type]


def test_validate_step_writes_the_same_files_from_a_table_in_many_row_groups(
    tiny_cfg: FluxoraConfig, tmp_path: Path, faulty: pd.DataFrame
) -> None:
    raw = pa.Table.from_pandas(faulty, preserve_index=False)
    outputs = {}
    for size in SIZES:
        home = _home(tmp_path, f"b{size}")
        pq.write_table(raw, home.raw_data, row_group_size=1000)  # ids scattered over every row group
        result = steps.validate(_cfg(tiny_cfg, size), home)
        report = json.loads(Path(result.report).read_text())
        data = pd.read_parquet(home.validated_data)
        keys = [SERIES_ID, TIMESTAMP, CHECK, LOAD]
        quarantine = pd.read_parquet(home.quarantine).sort_values(keys, na_position="first").reset_index(drop=True)
        repairs = pd.read_parquet(home.repairs).sort_values([SERIES_ID, TIMESTAMP, CHECK]).reset_index(drop=True)
        outputs[size] = (report, data, quarantine, repairs)
        assert not list(home.data.glob(".*.tmp")), "temporary files left behind"
    report, data, quarantine, repairs = outputs[0]
    assert report["rows_in"] == len(faulty) == report["rows_out"] + report["rows_quarantined"]
    assert len(quarantine) == report["rows_quarantined"] and len(data) == report["rows_written"]
    for size in SIZES[1:]:
        assert outputs[size][0] == report, size
        pd.testing.assert_frame_equal(outputs[size][1], data)
        pd.testing.assert_frame_equal(outputs[size][2], quarantine)
        pd.testing.assert_frame_equal(outputs[size][3], repairs)
    assert pd.read_parquet(home.validated_data).equals(data)  # what downstream steps read


def test_a_failed_batched_gate_leaves_no_validated_data(
    tiny_cfg: FluxoraConfig, tmp_path: Path, faulty: pd.DataFrame
) -> None:
    home = _home(tmp_path, "failed")
    pq.write_table(pa.Table.from_pandas(faulty, preserve_index=False), home.raw_data, row_group_size=1000)
    steps.validate(_cfg(tiny_cfg, 3), home)  # a good run leaves validated data behind ...
    cfg = replace(tiny_cfg, data=replace(tiny_cfg.data, batch_series=3, gate=replace(GATE, negative="fail")))
    with pytest.raises(GateFailedError, match=r"\[negative\] .*1 row\(s\): negative load"):
        steps.validate(cfg, home)
    assert not home.validated_data.exists()  # ... which a failed gate removes
    assert not list(home.data.glob(".*.tmp")), "temporary files left behind"
    report = json.loads((home.reports / "validation.json").read_text())
    assert report["status"] == "failed" and report["failure"]["series_id"] == "series_004"


def test_synthetic_ingest_in_batches_writes_the_same_table(tiny_cfg: FluxoraConfig, tmp_path: Path) -> None:
    tables = {}
    for size in (0, 7):
        home = _home(tmp_path, f"ingest{size}")
        cfg = _cfg(tiny_cfg, size, n_series=300, days=2, series=["series_007", "series_150", "series_299"])
        result = steps.ingest(cfg, home)
        assert (result.rows, result.series) == (3 * 48, 3)
        tables[size] = pd.read_parquet(home.raw_data)
        unfiltered = _cfg(tiny_cfg, size, n_series=300, days=2)
        steps.ingest(unfiltered, home)
        assert pq.ParquetFile(home.raw_data).metadata.num_rows == 300 * 48
    pd.testing.assert_frame_equal(tables[7], tables[0])


def test_batch_series_must_not_be_negative(tiny_cfg: FluxoraConfig, tmp_path: Path) -> None:
    home = _home(tmp_path, "bad")
    with pytest.raises(ConfigError, match=r"data\.batch_series: must be a whole number >= 0.*got -1"):
        steps.ingest(_cfg(tiny_cfg, -1), home)
    assert not home.raw_data.exists()


def test_weather_join_in_row_groups_writes_the_same_table_and_asks_once_per_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The weather join streams the raw table row group by row group: the same rows in the same
    order as in one go, each location fetched once for the whole table's days."""
    import httpx

    from fluxora.config import WeatherConfig
    from fluxora.data.ingest import ingest

    asked: list[str] = []

    def weather(request: httpx.Request) -> httpx.Response:  # an Open-Meteo archive reply, temperature = lat / 10
        p = request.url.params
        asked.append(f"{p['latitude']} {p['start_date']} {p['end_date']}")
        end = pd.Timestamp(p["end_date"]) + pd.Timedelta(hours=23)
        times = pd.date_range(p["start_date"], end, freq="h", tz="UTC")
        hourly = {
            "time": [int(t.timestamp()) for t in times],
            "temperature_2m": [float(p["latitude"]) / 10] * len(times),
        }
        return httpx.Response(200, json={"utc_offset_seconds": 0, "hourly": hourly})

    (tmp_path / "data").mkdir()
    stamps = pd.date_range("2024-01-01", periods=24 * 10, freq="h", tz="UTC")
    rows = [(sid, t.isoformat(), 100.0 + i) for t in stamps for i, sid in enumerate("abc")]  # in time order
    pd.DataFrame(rows, columns=["series_id", "timestamp", "load"]).to_csv(tmp_path / "data" / "load.csv", index=False)
    places = {"a": "10.0,1.0", "b": "20.0,2.0", "c": "10.0,1.0"}
    monkeypatch.setattr("fluxora.data.sources.BLOCK_BYTES", 4096)  # many blocks: many row groups
    tables = {}
    for size in (0, 2):
        asked.clear()
        cfg = DataConfig(
            source="file", path="data/load.csv", batch_series=size, weather=WeatherConfig("open_meteo", places)
        )
        client = httpx.Client(transport=httpx.MockTransport(weather))
        summary = ingest(cfg, tmp_path / f"raw{size}.parquet", tmp_path, client=client)
        assert summary.rows == len(rows)
        assert sorted(asked) == ["10.0 2024-01-01 2024-01-10", "20.0 2024-01-01 2024-01-10"]
        tables[size] = pd.read_parquet(tmp_path / f"raw{size}.parquet")
        if size:  # streamed: the CSV's blocks stay row groups
            assert pq.ParquetFile(tmp_path / f"raw{size}.parquet").metadata.num_row_groups > 5
    pd.testing.assert_frame_equal(tables[2], tables[0])
    assert tables[0].groupby(SERIES_ID)[TEMPERATURE].unique().map(list).to_dict() == {
        "a": [1.0],
        "b": [2.0],
        "c": [1.0],
    }
