"""Tests for fluxora.monitoring.drift against the real Evidently (no mocks)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fluxora.errors import InsufficientDataError
from fluxora.monitoring.drift import DriftResult, drift_report

N_ROWS = 2_000


def _frame(seed: int, n: int = N_ROWS, cols: tuple[str, ...] = ("load", "temp", "humidity")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.normal(loc=10.0, scale=2.0, size=n) for c in cols})


def _files(out_dir: Path) -> list[str]:
    return sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []


def test_same_distribution_is_not_drifted(tmp_path: Path) -> None:
    res = drift_report(_frame(1), _frame(2), ["load", "temp", "humidity"], tmp_path)
    assert res.drifted is False
    assert res.n_columns == 3
    assert res.n_drifted == 0
    assert res.drift_share == 0.0
    assert set(res.columns) == {"load", "temp", "humidity"}
    assert all(c["drifted"] is False for c in res.columns.values())
    assert res.skipped == {}


def test_shifted_column_drifts_and_threshold_decides_dataset(tmp_path: Path) -> None:
    ref, cur = _frame(1), _frame(2)
    cur["load"] += 5 * 2.0  # +5 standard deviations
    cols = ["load", "temp", "humidity"]

    low = drift_report(ref, cur, cols, tmp_path, name="low", drift_share_threshold=0.3)
    assert low.columns["load"]["drifted"] is True
    assert low.columns["temp"]["drifted"] is False
    assert low.columns["humidity"]["drifted"] is False
    assert low.n_drifted == 1
    assert low.drift_share == pytest.approx(1 / 3)
    assert low.drifted is True
    # >1000 reference rows -> Evidently's default is normed Wasserstein distance (higher = more drift)
    assert low.columns["load"]["score"] > low.columns["temp"]["score"]

    default = drift_report(ref, cur, cols, tmp_path, name="default")  # threshold 0.5
    assert default.columns["load"]["drifted"] is True
    assert default.drifted is False


def test_nan_constant_missing_and_non_numeric_columns_are_skipped(
    tmp_path: Path,
) -> None:
    ref, cur = _frame(1), _frame(2)
    cur["all_nan"] = np.nan
    ref["all_nan"] = 1.0
    ref["const"] = 3.0
    cur["const"] = np.random.default_rng(3).normal(size=N_ROWS)
    ref["only_inf"] = np.inf
    cur["only_inf"] = 1.0
    ref["label"] = "a"
    cur["label"] = "b"
    cols = ["load", "all_nan", "const", "only_inf", "label", "not_there"]

    res = drift_report(ref, cur, cols, tmp_path)

    assert set(res.skipped) == {"all_nan", "const", "only_inf", "label", "not_there"}
    assert "NaN" in res.skipped["all_nan"] and "current" in res.skipped["all_nan"]
    assert "constant" in res.skipped["const"] and "reference" in res.skipped["const"]
    assert "NaN/inf" in res.skipped["only_inf"]
    assert "non-numeric" in res.skipped["label"]
    assert "missing" in res.skipped["not_there"] and "both" not in res.skipped["not_there"]
    assert "reference" in res.skipped["not_there"] and "current" in res.skipped["not_there"]
    assert list(res.columns) == ["load"]
    assert res.n_columns == 1
    evidently_text = res.evidently_json_path.read_text()
    assert "all_nan" not in evidently_text and "const" not in evidently_text


def test_nullable_ints_partial_nans_and_infs_are_analysed(tmp_path: Path) -> None:
    # Raw Evidently crashes on pd.NA in a nullable Int64 column; we convert to float first.
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"kwh": pd.array(rng.integers(0, 100, N_ROWS), dtype="Int64")})
    cur = pd.DataFrame({"kwh": pd.array(rng.integers(0, 100, N_ROWS), dtype="Int64")})
    ref.loc[::7, "kwh"] = pd.NA
    cur["kwh"] = cur["kwh"].astype("float64")
    cur.loc[::5, "kwh"] = np.inf
    res = drift_report(ref, cur, ["kwh"], tmp_path)
    assert res.skipped == {}
    assert res.columns["kwh"]["drifted"] is False
    assert np.isfinite(res.columns["kwh"]["score"])


@pytest.mark.parametrize("empty", ["reference", "current"])
def test_empty_window_raises_insufficient_data(tmp_path: Path, empty: str) -> None:
    ref, cur = _frame(1), _frame(2)
    if empty == "reference":
        ref = ref.iloc[:0]
    else:
        cur = cur.iloc[:0]
    out_dir = tmp_path / "out"
    with pytest.raises(InsufficientDataError, match="0 rows"):
        drift_report(ref, cur, ["load"], out_dir)
    assert _files(out_dir) == []


def test_no_analysable_column_raises_insufficient_data(tmp_path: Path) -> None:
    ref, cur = _frame(1), _frame(2)
    cur["load"] = np.nan
    ref["temp"] = 7.0
    out_dir = tmp_path / "out"
    with pytest.raises(InsufficientDataError, match="no column can be analysed") as info:
        drift_report(ref, cur, ["load", "temp"], out_dir)
    assert "'load'" in str(info.value) and "'temp'" in str(info.value)
    assert _files(out_dir) == []


def test_files_are_written_atomically_with_expected_json(tmp_path: Path) -> None:
    out_dir = tmp_path / "nested" / "reports"
    ref = _frame(1)
    ref.index = pd.date_range("2024-01-01", periods=N_ROWS, freq="h", tz="UTC")
    res = drift_report(ref, _frame(2), ["load", "temp"], out_dir, name="weekly")

    assert res.html_path == out_dir / "weekly.html"
    assert res.json_path == out_dir / "weekly.json"
    assert res.evidently_json_path == out_dir / "weekly.evidently.json"
    # exactly the three outputs: no temp files left behind
    assert _files(out_dir) == ["weekly.evidently.json", "weekly.html", "weekly.json"]
    assert "<html" in res.html_path.read_text(encoding="utf-8")[:2000].lower()

    summary = json.loads(res.json_path.read_text())
    assert {f.name for f in fields(DriftResult)} <= set(summary)
    assert summary == {**summary, **res.to_dict()}
    assert summary["json_path"] == str(res.json_path)
    assert set(summary["stattests"]) == {"load", "temp"}
    assert summary["stattests"]["load"]["method"]
    window = summary["window"]
    assert window["reference"]["rows_total"] == N_ROWS
    assert window["reference"]["start"] == "2024-01-01T00:00:00+00:00"
    assert window["current"]["start"] is None
    assert window["max_rows"] == 50_000

    evidently = json.loads(res.evidently_json_path.read_text())
    assert set(evidently) == {"metrics", "tests"}
    drift_cols = {m["config"]["column"] for m in evidently["metrics"] if "column" in m["config"]}
    assert drift_cols == {"load", "temp"}

    json.dumps(res.to_dict())  # JSON-safe


def test_rerun_replaces_existing_files(tmp_path: Path) -> None:
    first = drift_report(_frame(1), _frame(2), ["load"], tmp_path)
    shifted = _frame(2)
    shifted["load"] += 10.0
    second = drift_report(_frame(1), shifted, ["load"], tmp_path)
    assert first.drifted is False and second.drifted is True
    assert json.loads(second.json_path.read_text())["drifted"] is True
    assert _files(tmp_path) == ["drift.evidently.json", "drift.html", "drift.json"]


def test_sampling_respects_max_rows_and_is_deterministic(tmp_path: Path) -> None:
    ref, cur = _frame(1, n=5_000), _frame(2, n=3_000)
    a = drift_report(ref, cur, ["load", "temp"], tmp_path, name="a", max_rows=800, seed=7)
    b = drift_report(ref, cur, ["load", "temp"], tmp_path, name="b", max_rows=800, seed=7)
    c = drift_report(ref, cur, ["load", "temp"], tmp_path, name="c", max_rows=800, seed=8)

    assert (a.reference_rows, a.current_rows) == (800, 800)
    assert a.columns == b.columns
    assert a.columns["load"]["score"] != c.columns["load"]["score"]
    window = json.loads(a.json_path.read_text())["window"]
    assert window["reference"] == {
        "rows_total": 5_000,
        "rows_used": 800,
        "sampled": True,
        "start": None,
        "end": None,
    }
    assert window["current"]["rows_used"] == 800
    assert window["seed"] == 7

    small = drift_report(ref.iloc[:300], cur, ["load"], tmp_path, name="small", max_rows=800)
    assert (small.reference_rows, small.current_rows) == (300, 800)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "../escape"}, "name"),
        ({"name": ""}, "name"),
        ({"max_rows": 0}, "max_rows"),
        ({"drift_share_threshold": 0.0}, "drift_share_threshold"),
        ({"drift_share_threshold": 1.5}, "drift_share_threshold"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_arguments_are_rejected(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        drift_report(_frame(1, n=50), _frame(2, n=50), ["load"], tmp_path / "out", **kwargs)
    assert _files(tmp_path / "out") == []


def test_failed_write_leaves_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "drift.json").mkdir()  # the final os.replace onto a directory fails
    with pytest.raises(OSError):
        drift_report(_frame(1), _frame(2), ["load"], tmp_path)
    assert not [p for p in _files(tmp_path) if p.endswith(".tmp")]
    assert (tmp_path / "drift.json").is_dir()
