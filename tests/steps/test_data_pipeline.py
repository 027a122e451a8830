"""A user's CSV in local time, with DST days, gaps and a few bad rows, through the whole pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import TINY_OVERRIDES
from fluxora import steps
from fluxora.config import DataConfig, compose
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.paths import Home
from fluxora.runtime import prepare

pytestmark = pytest.mark.integration


def _local_csv(path: Path) -> int:
    """Two meters exported in Europe/Berlin wall time from March to November 2024; returns the data row count."""
    utc = generate(DataConfig(n_series=2, start="2024-03-20", days=230, seed=7))
    local = utc[TIMESTAMP].dt.tz_convert("Europe/Berlin").dt.strftime("%Y-%m-%d %H:%M")
    export = pd.DataFrame(
        {"meter": utc[SERIES_ID], "local_time": local, "kw": utc[LOAD].round(3), "t_out": utc[TEMPERATURE].round(2)}
    )
    a = export["meter"] == "series_000"
    export = export.drop(index=export.index[a][100:103])  # a 3-hour gap: filled
    export = export.drop(
        index=export.index[export["meter"] != "series_000"][30:60]
    )  # a 30-hour outage early on: older part quarantined
    skipped = pd.DataFrame({"meter": ["series_000"], "local_time": ["2024-03-31 02:00"], "kw": [1.0], "t_out": [5.0]})
    export = pd.concat([export, skipped, export.iloc[[500]]], ignore_index=True)  # non-existent hour + duplicate
    export.to_csv(path, index=False)
    return len(export)


def test_local_time_csv_to_registered_model(tmp_path: Path) -> None:
    csv = tmp_path / "meters.csv"
    rows = _local_csv(csv)
    cfg = compose(
        [
            *TINY_OVERRIDES,
            "data=csv",
            f"data.path={csv}",
            "data.timezone=Europe/Berlin",
            f"data.roots=[{tmp_path}]",
            "data.columns.series_id=meter",
            "data.columns.timestamp=local_time",
            "data.columns.load=kw",
            "data.columns.temperature=t_out",
        ]
    )
    home = prepare(Home(tmp_path / "home"))
    assert steps.ingest(cfg, home).outputs()["rows"] == rows
    validated = steps.validate(cfg, home).outputs()

    report = json.loads((home.reports / "validation.json").read_text())
    assert report["rows_in"] == rows == report["rows_out"] + report["rows_quarantined"]
    checks = report["checks"]
    assert checks["bad_timestamps"]["rows_quarantined"] == 1  # 2024-03-31 02:00 does not exist in Berlin
    assert checks["duplicates"]["rows_quarantined"] == 1
    assert checks["gaps"]["rows_filled"] == 3 and checks["gaps"]["rows_quarantined"] == 30
    assert report["rows_quarantined"] == 32

    data = pd.read_parquet(home.validated_data)
    assert str(data[TIMESTAMP].dt.tz) == "UTC" and validated["rows"] == len(data)
    assert data.groupby(SERIES_ID)[TIMESTAMP].diff().dropna().eq(pd.Timedelta("1h")).all()
    berlin = data[data[SERIES_ID] == "series_000"][TIMESTAMP].dt.tz_convert("Europe/Berlin")
    per_day = berlin.groupby(berlin.dt.date).size()
    assert per_day[pd.Timestamp("2024-03-31").date()] == 23 and per_day[pd.Timestamp("2024-10-27").date()] == 25

    steps.features(cfg, home)
    trained = steps.train(cfg, home).outputs()
    client = mlflow.MlflowClient(tracking_uri=home.mlflow_tracking_uri, registry_uri=home.mlflow_tracking_uri)
    version = client.get_model_version(cfg.train.registered_model_name, trained["model"]["version"])
    assert len(version.tags["fluxora.data_version"]) == 32 and version.tags["fluxora.git_commit"]
