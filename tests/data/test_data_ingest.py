"""File ingest: layouts, column mapping, time zones, folders/globs, and the bad-input corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fluxora.config import ColumnsConfig, DataConfig
from fluxora.data.errors import DataSourceError, UnsafePathError
from fluxora.data.ingest import ingest
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.sources import ISSUE


def _cfg(tmp_path: Path, path: str, **kw: object) -> DataConfig:
    return DataConfig(source="file", path=path, roots=[str(tmp_path)], **kw)  # type: ignore[arg-type]


def _run(tmp_path: Path, cfg: DataConfig) -> pd.DataFrame:
    out = tmp_path / "out" / "raw.parquet"
    summary = ingest(cfg, out, tmp_path)
    df = pd.read_parquet(out)
    assert summary.rows == len(df)
    return df


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_long_csv_with_column_mapping_local_time_and_extras(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "meters.csv",
        "meter;time;kw;temp;humidity;site\n7;2024-07-01 00:00;10.5;20;55;north\n7;2024-07-01 01:00;11.0;21;56;north\n",
    )
    columns = ColumnsConfig(series_id="meter", timestamp="time", load="kw", temperature="temp")
    df = _run(tmp_path, _cfg(tmp_path, path, delimiter=";", timezone="Europe/Berlin", columns=columns))
    assert list(df.columns) == [SERIES_ID, TIMESTAMP, LOAD, TEMPERATURE, "humidity", ISSUE]  # text column not kept
    assert df[SERIES_ID].tolist() == ["7", "7"]  # ids stay strings
    assert df[TIMESTAMP].tolist() == list(pd.to_datetime(["2024-06-30 22:00", "2024-06-30 23:00"], utc=True))
    assert df[LOAD].tolist() == [10.5, 11.0] and df["humidity"].tolist() == [55.0, 56.0]


def test_offset_aware_and_utc_timestamps(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "a.csv",
        "series_id,timestamp,load,temperature\n"
        "a,2024-10-27T02:30:00+02:00,1,1\na,2024-10-27T02:30:00+01:00,2,1\na,2024-10-27T03:00:00Z,3,1\n",
    )
    df = _run(tmp_path, _cfg(tmp_path, path, timezone="America/New_York"))  # zone ignored: offsets rule
    assert df[TIMESTAMP].tolist() == list(
        pd.to_datetime(["2024-10-27 00:30", "2024-10-27 01:30", "2024-10-27 03:00"], utc=True)
    )


def test_wide_layout_one_column_per_series(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "wide.csv", "timestamp,temperature,north,south\n2024-01-01 00:00,3,10,20\n2024-01-01 01:00,4,11,21\n"
    )
    df = _run(tmp_path, _cfg(tmp_path, path, layout="wide"))
    assert len(df) == 4  # every (timestamp, series) cell is a row
    assert sorted(df[SERIES_ID].unique()) == ["north", "south"]
    assert df.loc[df[SERIES_ID] == "south", LOAD].tolist() == [20.0, 21.0]
    assert df.loc[df[SERIES_ID] == "south", TEMPERATURE].tolist() == [3.0, 4.0]


def test_parquet_folder_and_glob(tmp_path: Path) -> None:
    stamps = pd.date_range("2024-01-01", periods=3, freq="h")  # naive: local time
    for i in range(2):
        part = pd.DataFrame({SERIES_ID: f"s{i}", TIMESTAMP: stamps, LOAD: [1.0, 2.0, 3.0], TEMPERATURE: 5.0})
        (tmp_path / "in").mkdir(exist_ok=True)
        part.to_parquet(tmp_path / "in" / f"part{i}.parquet")
    df = _run(tmp_path, _cfg(tmp_path, str(tmp_path / "in"), timezone="Europe/Berlin"))
    assert len(df) == 6 and df[TIMESTAMP].min() == pd.Timestamp("2023-12-31 23:00", tz="UTC")
    globbed = _run(tmp_path, _cfg(tmp_path, str(tmp_path / "in" / "part1.*")))
    assert globbed[SERIES_ID].unique().tolist() == ["s1"]


def test_dst_rows_are_flagged_not_dropped(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "dst.csv",
        "series_id,timestamp,load,temperature\n"
        "a,2024-03-31 01:00,1,1\na,2024-03-31 02:00,1,1\na,2024-03-31 03:00,1,1\n",
    )
    df = _run(tmp_path, _cfg(tmp_path, path, timezone="Europe/Berlin"))
    assert len(df) == 3
    assert df[TIMESTAMP].isna().tolist() == [False, True, False]
    assert "nonexistent local time" in df[ISSUE].iloc[1]


# -- the bad-input corpus: each yields a clear one-line error or a documented, flagged repair --------------


@pytest.mark.parametrize(
    ("text", "kw", "match"),
    [
        ("", {}, "the file is empty"),
        ("series_id,timestamp,load,temperature\n", {}, "no data rows"),
        ("series_id;timestamp;load\na;2024-01-01 00:00;1\n", {}, r"set data.delimiter=';'"),
        ("series_id,timestamp,load\na,2024-01-01 00:00,1\na,2024-01-01T01:00:00+01:00,2\n", {}, "mix values with and"),
        ("series_id,timestamp,load\na,2024-01-01 00:00,high\na,2024-01-01 01:00,low\n", {}, "holds no numbers"),
        ("series_id,timestamp,load\na,2024-01-01 00:00,1\n", {"timezone": "Mars/Olympus"}, "unknown time zone"),
        ("id,timestamp,load\na,2024-01-01 00:00,1\n", {}, r"\['series_id'\] not found"),
    ],
    ids=["empty", "header-only", "wrong-delimiter", "mixed-zones", "non-numeric-column", "bad-zone", "unmapped"],
)
def test_bad_input_is_a_clear_error(tmp_path: Path, text: str, kw: dict[str, object], match: str) -> None:
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(DataSourceError, match=match) as info:
        ingest(_cfg(tmp_path, path, **kw), tmp_path / "raw.parquet", tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "raw.parquet").exists()  # nothing half-written


def test_bad_values_are_kept_and_flagged_for_the_gate(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "values.csv",
        "series_id,timestamp,load,temperature,spare\n"
        "a,2024-01-01 02:00,inf,1,\n"  # unsorted, ±inf, all-NaN extra column
        "a,2024-01-01 00:00,-inf,1,\n"
        "a,2024-01-01 01:00,n/a?,1,\n"
        "a,2024-01-01 01:00,4,1,\n"
        "a,yesterday,5,1,\n",
    )
    df = _run(tmp_path, _cfg(tmp_path, path))
    assert len(df) == 5
    assert np.isposinf(df[LOAD].iloc[0]) and np.isneginf(df[LOAD].iloc[1])
    assert df[ISSUE].iloc[2] == "non-numeric load: n/a?"
    assert df[ISSUE].iloc[4] == "unparseable timestamp: yesterday" and pd.isna(df[TIMESTAMP].iloc[4])
    assert df["spare"].isna().all()


def test_paths_outside_the_roots_are_refused(tmp_path: Path) -> None:
    inside = tmp_path / "root"
    inside.mkdir()
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("series_id,timestamp,load\na,2024-01-01 00:00,1\n")
    (inside / "link.csv").symlink_to(outside)
    cfg = DataConfig(source="file", roots=[str(inside)])
    for path in (str(outside), str(inside / ".." / "elsewhere.csv"), str(inside / "link.csv"), "../elsewhere.csv"):
        cfg.path = path
        with pytest.raises(UnsafePathError, match="outside the allowed data roots"):
            ingest(cfg, tmp_path / "raw.parquet", inside)


@pytest.mark.parametrize(
    "stamp",
    ["2024-01-01T{h:02d}:00:00+01:00", "2024-01-01 {h:02d}:00"],
    ids=["offsets", "naive"],
)
def test_unparseable_timestamps_are_quarantined_with_or_without_offsets(tmp_path: Path, stamp: str) -> None:
    """A few values that are no date-time at all are unparseable rows, not a second form of
    timestamp: a file with UTC offsets quarantines them exactly as a naive-time file does."""
    from fluxora.config import GateConfig
    from fluxora.data.gate import CHECK, REASON, run_gate

    rows = [f"a,{stamp.format(h=h)},{10 + h},1" for h in range(24)]
    rows[5] = "a,not a time,15,1"
    rows[9] = "a,2024-13-45 00:00,19,1"  # no offset, and not a date either
    path = _write(tmp_path, "bad_stamps.csv", "series_id,timestamp,load,temperature\n" + "\n".join(rows) + "\n")
    df = _run(tmp_path, _cfg(tmp_path, path, timezone="UTC"))
    assert len(df) == 24 and df[TIMESTAMP].isna().sum() == 2
    assert df.loc[df[TIMESTAMP].isna(), ISSUE].str.startswith("unparseable timestamp").all()

    res = run_gate(df, GateConfig(min_series_days=0, gaps="repair"))
    assert res.report["rows_in"] == res.report["rows_out"] + res.report["rows_quarantined"] == 24
    assert res.report["rows_quarantined"] == 2 and set(res.quarantine[CHECK]) == {"bad_timestamps"}
    assert sorted(res.quarantine[REASON]) == [
        "unparseable timestamp: 2024-13-45 00:00",
        "unparseable timestamp: not a time",
    ]


def test_naive_microsecond_parquet_across_a_dst_change_keeps_its_dates(tmp_path: Path) -> None:
    """A SimBench-like export: naive local quarter-hours in microseconds, German legal time (the
    spring-forward hour absent, the fall-back hour twice), read in Europe/Berlin in small batches."""
    wall = pd.date_range("2016-03-26", "2016-11-01", freq="15min", tz="Europe/Berlin").tz_localize(None)
    frame = pd.DataFrame({"series_id": "p1", "timestamp": wall.as_unit("us"), "load": 1.0})
    frame.to_parquet(tmp_path / "profiles.parquet", row_group_size=5_000)
    df = _run(tmp_path, _cfg(tmp_path, "profiles.parquet", timezone="Europe/Berlin"))
    stamps = pd.DatetimeIndex(df[TIMESTAMP])
    assert stamps.min() == pd.Timestamp("2016-03-25 23:00", tz="UTC") and stamps.max().year == 2016
    assert (np.diff(stamps.asi8) == 15 * 60 * 10**9).all()  # one instant per quarter-hour, none lost
    assert len(df) == len(wall)
