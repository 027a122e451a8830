"""Feast definitions for Fluxora: only declarations here (`feast apply` imports every file).

The offline source lives under $FLUXORA_HOME, written by the feature step of the pipeline.
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Array, Float32, Float64

_HOME = Path(os.environ.get("FLUXORA_HOME", ".fluxora"))

# One load series (meter, feeder, region); the key every feature and forecast is joined on.
series = Entity(name="series", join_keys=["series_id"], description="A load series")

# Written by `fluxora.features.build.origin_states`: one row per (series, forecast origin).
origin_state_source = FileSource(
    name="origin_state_source",
    path=str(_HOME / "features" / "origin_state.parquet"),
    timestamp_field="event_timestamp",
)

# State at the forecast origin. TTL is short on purpose: the history is precomputed into the
# arrays, so a row is only valid at the origin it is stamped with (no stale look-backs).
origin_state = FeatureView(
    name="origin_state",
    entities=[series],
    ttl=timedelta(hours=2),
    schema=[
        Field(name="load_history", dtype=Array(Float32), description="hourly load, oldest first, ending at the origin"),
        Field(name="temp_history", dtype=Array(Float32), description="hourly temperature (C), ending at the origin"),
        Field(name="load_mean_24h", dtype=Float64),
        Field(name="temp_mean_24h", dtype=Float64),
    ],
    source=origin_state_source,
    online=True,
)

# The train/serve contract: training reads it offline, the API reads it online.
load_forecast_v1 = FeatureService(name="load_forecast_v1", features=[origin_state])
