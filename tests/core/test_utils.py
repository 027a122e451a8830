"""Paths, atomic IO, metrics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fluxora.data import io
from fluxora.models import metrics
from fluxora.paths import Home, project_root


def test_home_from_env_and_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXORA_HOME", str(tmp_path / "h"))
    home = Home.from_env()
    assert home.root == (tmp_path / "h").resolve()
    assert not home.root.exists()  # nothing is created until an entry point asks
    home.ensure()
    for path in (home.data, home.reports, home.prefect_home, home.mlflow_db.parent, home.feast_repo):
        assert path.is_dir() and home.root in path.parents
    assert home.mlflow_tracking_uri == f"sqlite:///{home.mlflow_db}"


def test_home_defaults_to_project_dot_fluxora(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUXORA_HOME")
    assert Home.from_env().root == project_root() / ".fluxora"


def test_project_root_found_from_subdirectory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("defaults: []\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert project_root() == tmp_path.resolve()


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.parquet"

    def broken(tmp: Path) -> None:
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, broken)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_write_replaces_existing(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    io.atomic_write_text(target, "one")
    io.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_parquet_round_trip_and_digest(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1.0, 2.0], "t": pd.date_range("2024-01-01", periods=2, freq="h", tz="UTC")})
    path = io.write_parquet(df, tmp_path / "x.parquet")
    pd.testing.assert_frame_equal(io.read_parquet(path), df)
    assert io.file_digest(path) == hashlib.md5(path.read_bytes()).hexdigest()


def test_read_missing_parquet_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fluxora run"):
        io.read_parquet(tmp_path / "missing.parquet")


def test_mae_and_mape_known_values() -> None:
    actual = np.array([100.0, 200.0, 50.0])
    forecast = np.array([110.0, 180.0, 50.0])
    assert metrics.mae(actual, forecast) == pytest.approx(10.0)
    assert metrics.mape(actual, forecast) == pytest.approx((10 + 10 + 0) / 3)


def test_metrics_skip_nonfinite_and_zero_actuals() -> None:
    actual = np.array([0.0, 100.0, np.nan])
    forecast = np.array([5.0, 90.0, 1.0])
    assert metrics.mae(actual, forecast) == pytest.approx(7.5)
    assert metrics.mape(actual, forecast) == pytest.approx(10.0)
    assert np.isnan(metrics.mae(np.array([np.nan]), np.array([1.0])))


def test_metrics_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        metrics.mae(np.ones(3), np.ones(2))
