"""A FLUXORA_HOME with real synthetic data and a served-forecast log, for the history and UI tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fluxora import servicedb as db
from fluxora.api.forecast_log import ForecastLogWriter
from fluxora.config import DataConfig, compose
from fluxora.data import io
from fluxora.data.schema import LOAD, SERIES_ID, TIMESTAMP
from fluxora.data.synthetic import generate
from fluxora.paths import Home

SERIES = ("series_000", "series_001", "series_002")


def monitored_home(root: Path, worse_series: str | None = None, days_logged: int = 14) -> tuple[Home, Any]:
    """70 days of synthetic data for three series and `days_logged` days of 24-hour forecasts from
    every 6th hour, written by the service's own writer: the actual plus noise of ~3 % of the level
    (seasonal naive misses by more). In `worse_series` the forecasts of the last day miss by ~40 %."""
    home = Home(root).ensure()
    data = generate(DataConfig(n_series=len(SERIES), days=70))
    io.write_parquet(data, home.validated_data)
    url = home.service_database_url
    engine = db.make_engine(url)
    db.migrate(engine)
    end = data[TIMESTAMP].max()
    by_key = data.set_index([SERIES_ID, TIMESTAMP])[LOAD]
    rng = np.random.default_rng(3)
    rows = []
    for sid in SERIES:
        level = float(data.loc[data[SERIES_ID] == sid, LOAD].mean())
        last = float(by_key[(sid, end)])
        for k in range(24 * days_logged, 0, -6):
            origin = end - pd.Timedelta(hours=k)
            targets = [origin + pd.Timedelta(hours=s) for s in range(1, 25)]
            scale = 0.4 if sid == worse_series and k <= 24 else 0.03
            values = [float(by_key.get((sid, t), last)) + scale * level * rng.standard_normal() for t in targets]
            rows.append(
                {
                    "served_at": datetime.now(UTC),
                    "series_id": sid,
                    "origin": origin.to_pydatetime(),
                    "horizon": 24,
                    "values": values,
                    "quantiles": {"0.1": [v - 0.05 * level for v in values], "0.9": [v + 0.05 * level for v in values]},
                    "model_version": "1",
                    "consumer": "key:test",
                    "endpoint": "get_forecast",
                    "request_id": None,
                    "latency_ms": 1.0,
                }
            )
    writer = ForecastLogWriter(engine, flush_s=60.0)
    writer.start()
    writer.submit(rows)
    writer.close()
    engine.dispose()
    assert writer.written == len(rows)
    return home, compose([f"monitor.accuracy_days={days_logged + 2}"])


def ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)
