"""Features: every feature table built from validated data, written as Feast's offline sources,
applied, and the latest state materialized to the online store."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.schema import SERIES_ID, TIMESTAMP
from fluxora.errors import InsufficientDataError
from fluxora.paths import Home
from fluxora.steps import cache
from fluxora.steps.base import StepResult

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeaturesResult(StepResult):
    step = "features"
    path: str
    rows: int  # origin states written
    tables: dict[str, int]  # rows per feature view
    applied: list[str] = field(default_factory=list)
    online_store: str = ""
    materialized_until: str = ""
    cached: bool = False  # True: the offline tables were current; only applied and materialized again


def features(cfg: FluxoraConfig, home: Home) -> FeaturesResult:
    """Build every feature table, write the Feast offline sources, apply, materialize the latest state."""
    from fluxora.features import store as fs
    from fluxora.features.build import feature_batches
    from fluxora.features.weather import forecast_states

    data = io.read_parquet(home.validated_data)
    vintages = _weather_forecasts(cfg, home, data)
    wf = cfg.data.weather_forecast
    key = cache.Key(
        io.file_digest(home.validated_data),
        cache.config_hash(cfg.features, wf.hours, wf.max_age_hours, _digest(home) if vintages is not None else ""),
    )
    if (cached := cache.lookup(home, "features", key)) is not None:
        # The offline tables are current; the online store and registry may not be (a Redis
        # restart, another infra): apply and load the latest state again, which is cheap.
        published = fs.republish(home, list(cached["tables"]), cfg.infra)
        return FeaturesResult(**(cached | _published(cfg, published) | {"cached": True}))
    last = {
        str(sid): np.datetime64(t.tz_convert(None), "ns") for sid, t in data.groupby(SERIES_ID)[TIMESTAMP].max().items()
    }
    forecasts = {"weather_forecast": forecast_states(vintages, wf.hours, wf.max_age_hours, last)}
    published, rows = fs.publish_batches(home, feature_batches(data, cfg.features), cfg.infra, forecasts)
    if "origin_state" not in rows:
        raise InsufficientDataError(
            f"no series has the {max(cfg.features.load_history_hours, cfg.features.temp_history_hours, 24)} "
            "hours of history needed for features"
        )
    out = FeaturesResult(str(fs.offline_path(home)), rows["origin_state"], rows, **_published(cfg, published))
    recorded = {k: v for k, v in out.outputs().items() if k in ("path", "rows", "tables")}
    cache.record(home, "features", key, recorded, [fs.table_path(home, view) for view in rows])
    return out


def panel(home: Home) -> Any:
    """The validated series in memory with the issued weather forecasts the features step
    stored (`weather_forecast`, point in time by origin), for backtests and training."""
    import pyarrow.parquet as pq

    from fluxora.features import store as fs
    from fluxora.features.weather import IssuedLookup
    from fluxora.models.panel import Panel

    path = fs.table_path(home, "weather_forecast")
    lookup = IssuedLookup(pq.read_table(path)) if path.is_file() else None
    return Panel.from_frame(io.read_parquet(home.validated_data), lookup or None)


def _published(cfg: FluxoraConfig, published: Any) -> dict[str, Any]:
    return {
        "applied": published.applied,
        "online_store": cfg.infra.online_store,
        "materialized_until": str(published.materialized_until),
    }


def _weather_forecasts(cfg: FluxoraConfig, home: Home, data: pd.DataFrame) -> pd.DataFrame | None:
    """The issued temperature forecasts `data.weather_forecast` names, screened and stored in the
    home next to the validated data (every vintage: the offline record), or None when no source
    is configured: observations are never passed off as forecasts. Rows the screen drops are
    counted by reason in the log."""
    from fluxora.data import weather_forecast
    from fluxora.paths import project_root

    screened = weather_forecast.collect(cfg.data, data, project_root())
    if screened is None:
        home.weather_forecasts.unlink(missing_ok=True)
        return None
    _log.info("weather forecasts: %s", screened.summary())
    forecasts = screened.forecasts
    if cfg.data.weather_forecast.provider == "open_meteo" and home.weather_forecasts.is_file():
        # A provider's live forecast is only ever its latest run: keep the runs fetched before.
        forecasts = weather_forecast.merge(io.read_parquet(home.weather_forecasts), forecasts)
    io.write_parquet(forecasts, home.weather_forecasts)
    return forecasts


def _digest(home: Home) -> str:
    return io.file_digest(home.weather_forecasts)
