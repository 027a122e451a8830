"""Features: every feature table built from validated data, written as Feast's offline sources,
applied, and the latest state materialized to the online store."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fluxora.config import FluxoraConfig
from fluxora.data import io
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

    key = cache.Key(io.file_digest(home.validated_data), cache.config_hash(cfg.features, _weather_version(cfg)))
    if (cached := cache.lookup(home, "features", key)) is not None:
        # The offline tables are current; the online store and registry may not be (a Redis
        # restart, another infra): apply and load the latest state again, which is cheap.
        published = fs.republish(home, list(cached["tables"]), cfg.infra)
        return FeaturesResult(**(cached | _published(cfg, published) | {"cached": True}))
    data = io.read_parquet(home.validated_data)
    forecasts = {"weather_forecast": forecast_states(_weather_forecasts(cfg), cfg.features.weather_forecast_hours)}
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


def _published(cfg: FluxoraConfig, published: Any) -> dict[str, Any]:
    return {
        "applied": published.applied,
        "online_store": cfg.infra.online_store,
        "materialized_until": str(published.materialized_until),
    }


def _weather_forecast_file(cfg: FluxoraConfig) -> Path | None:
    from fluxora.paths import project_root

    if not cfg.features.weather_forecast_path:
        return None
    path = Path(cfg.features.weather_forecast_path)
    return path if path.is_absolute() else project_root() / path


def _weather_version(cfg: FluxoraConfig) -> str:
    """The weather forecast file's digest, when one is configured (its contents feed the features)."""
    path = _weather_forecast_file(cfg)
    return io.file_digest(path) if path else ""


def _weather_forecasts(cfg: FluxoraConfig) -> pd.DataFrame | None:
    """The configured temperature-forecast source (long CSV/Parquet), screened, or None: never
    faked from observations. Rows it drops are counted by reason in the log."""
    from fluxora.data import weather_forecast

    path = _weather_forecast_file(cfg)
    if path is None:
        return None
    screened = weather_forecast.read(path)
    _log.info("weather forecasts %s: %s", path.name, screened.summary())
    return screened.forecasts
