"""Features: every feature table built from validated data, written as Feast's offline sources,
applied, and the latest state materialized to the online store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.errors import InsufficientDataError
from fluxora.paths import Home
from fluxora.steps import cache
from fluxora.steps.base import StepResult


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
    from fluxora.steps.weather import VIEW, collect, forecast_table, store

    wf = cfg.data.weather_forecast
    # Issued weather forecasts are screened against the whole table; without a source the table
    # is only ever read a batch of series at a time (memory holds one batch, not the data).
    data = io.read_parquet(home.validated_data) if wf.path or wf.provider else None
    vintages = store(cfg, home, None if data is None else collect(cfg, data))
    key = cache.Key(
        io.file_digest(home.validated_data),
        cache.config_hash(cfg.features, wf.hours, wf.max_age_hours, _digest(home) if vintages is not None else ""),
    )
    if (cached := cache.lookup(home, "features", key)) is not None:
        # The offline tables are current; the online store and registry may not be (a Redis
        # restart, another infra): apply and load the latest state again, which is cheap.
        published = fs.republish(home, list(cached["tables"]), cfg.infra)
        return FeaturesResult(**(cached | _published(cfg, published) | {"cached": True}))
    forecasts = {VIEW: forecast_table(cfg, vintages, data) if data is not None else forecast_states(None, 0, 0)}
    size = cfg.features.series_per_batch
    source = data if data is not None else (f for f, _ in io.SeriesBatches(home.validated_data, size, SERIES_ID))
    published, rows = fs.publish_batches(home, feature_batches(source, cfg.features), cfg.infra, forecasts)
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
    columns = [TIMESTAMP, LOAD, TEMPERATURE]
    batches = io.SeriesBatches(home.validated_data, _PANEL_BATCH, SERIES_ID, columns)
    return Panel.from_frames((frame for frame, _ in batches), lookup or None)


_PANEL_BATCH = 500  # series read at a time into the panel: the table is never in memory at once


def _published(cfg: FluxoraConfig, published: Any) -> dict[str, Any]:
    return {
        "applied": published.applied,
        "online_store": cfg.infra.online_store,
        "materialized_until": str(published.materialized_until),
    }


def _digest(home: Home) -> str:
    return io.file_digest(home.weather_forecasts)
