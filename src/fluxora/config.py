"""Typed configuration: Hydra composes `conf/`, this schema checks it.

Two planes: pipeline/experiment parameters live here (Hydra, `conf/`, mirrored to
`params.yaml` for DVC); run-time locations come from the environment (`fluxora.paths`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fluxora.errors import ConfigError

SCHEMA_NAME = "fluxora_schema"
PARAMS_HEADER = "# Generated from conf/ by `fluxora config export`. Do not edit: change conf/ and re-export.\n"


@dataclass
class DataConfig:
    """Where the load data comes from. `synthetic` is the built-in, seeded sample."""

    source: str = "synthetic"
    n_series: int = 3
    start: str = "2024-01-01"
    days: int = 400
    freq: str = "h"
    seed: int = 42
    noise: float = 0.03


@dataclass
class FeaturesConfig:
    """State-at-origin features stored in Feast; see `fluxora.features.build`."""

    load_history_hours: int = 168  # one week: covers the same-hour-last-week lag for horizons <= 168
    temp_history_hours: int = 24
    heating_base_c: float = 15.0  # below this, heating load rises (degree-hours)
    cooling_base_c: float = 22.0  # above this, cooling load rises
    feature_service: str = "load_forecast_v1"


@dataclass
class ModelConfig:
    """The forecaster and its hyper-parameters."""

    name: str = "xgboost"
    n_estimators: int = 400
    max_depth: int = 6
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0
    n_jobs: int = 0  # 0: all cores
    seed: int = 0


@dataclass
class TrainConfig:
    """Training set, holdout and registration."""

    horizon: int = 24  # hours ahead; the model is direct multi-horizon up to this
    origin_stride_hours: int = 3  # forecast origins sampled for training
    holdout_days: int = 28  # last days held out (time-ordered) for evaluation
    min_train_days: int = 28
    registered_model_name: str = "fluxora-load-forecaster"
    experiment: str = "fluxora"
    promotion_metric: str = "mae"


@dataclass
class MonitorConfig:
    """Data-drift report: a reference window against the latest window."""

    reference_days: int = 28
    current_days: int = 7
    drift_share_threshold: float = 0.5
    max_rows: int = 50_000


@dataclass
class ServeConfig:
    """The forecast API. Secrets (the JWT secret) come from the environment, never from here."""

    host: str = "127.0.0.1"
    port: int = 8000
    mode: str = "local"  # local | production (production refuses to start without a strong JWT secret)
    poll_interval_s: float = 30.0  # how often the champion alias is checked; a move is served within this
    registry_timeout_s: float = 5.0  # per registry call; a dead registry must not hang start-up
    retry_after_s: int = 30  # Retry-After on 503 (no model) responses
    cors_origins: list[str] = field(default_factory=list)  # browser origins allowed; empty: no CORS
    max_body_bytes: int = 1_048_576  # larger request bodies get 413
    rate_limit_per_minute: int = 600  # per API key or user; 0 disables
    rate_limit_burst: int = 60  # requests a consumer may send at once (in-memory limiter)
    token_ttl_minutes: int = 60  # lifetime of a JWT from /v1/auth/token
    jwt_audience: str = "fluxora-api"
    key_cache_s: float = 5.0  # how long a verified API key is trusted without a database read
    max_series_per_request: int = 100
    log_flush_s: float = 1.0  # forecast log: write a batch at least this often


@dataclass
class InfraConfig:
    """Where shared state lives. Empty URLs mean the local default under FLUXORA_HOME.

    `conf/infra/production.yaml` fills these from the environment (secrets and hosts stay out
    of the repo and out of params.yaml's committed defaults).
    """

    name: str = "local"
    mlflow_tracking_uri: str = ""  # "" -> sqlite:///$FLUXORA_HOME/mlflow/mlflow.db
    online_store: str = "sqlite"  # sqlite | redis
    redis_url: str = ""  # Feast online store (online_store=redis) and API rate limits
    feast_registry_url: str = ""  # "" -> file registry; else a SQLAlchemy URL (PostgreSQL)
    database_url: str = ""  # the API's database; "" -> sqlite under FLUXORA_HOME


@dataclass
class FluxoraConfig:
    """The whole configuration tree (`conf/config.yaml`)."""

    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    infra: InfraConfig = field(default_factory=InfraConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        """Stable hash of every parameter, for tagging runs."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _register_schema() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=FluxoraConfig)


def conf_dir() -> Path:
    from fluxora.paths import project_root

    return project_root() / "conf"


def compose(overrides: list[str] | tuple[str, ...] = (), config_dir: Path | None = None) -> FluxoraConfig:
    """Compose `conf/` with Hydra override strings into a checked `FluxoraConfig`.

    Raises ConfigError with a one-line message naming the offending key.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    _register_schema()
    directory = (config_dir or conf_dir()).resolve()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
        obj = OmegaConf.to_object(cfg)
    except Exception as exc:  # Hydra/OmegaConf raise many types; all become one clear line
        raise ConfigError(_explain(exc, overrides)) from None
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(obj, FluxoraConfig)
    return obj


def from_params(path: Path) -> FluxoraConfig:
    """Load and check a `params.yaml` (DVC's view of the config) against the schema."""
    from omegaconf import OmegaConf

    if not path.is_file():
        raise ConfigError(f"params file not found: {path} (generate it with `fluxora config export`)")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(FluxoraConfig), OmegaConf.load(path))
        obj = OmegaConf.to_object(merged)
    except Exception as exc:
        raise ConfigError(f"{path}: {_explain(exc, ())}") from None
    assert isinstance(obj, FluxoraConfig)
    return obj


def to_yaml(cfg: FluxoraConfig) -> str:
    """The `params.yaml` text for a config."""
    from omegaconf import OmegaConf

    return PARAMS_HEADER + OmegaConf.to_yaml(OmegaConf.structured(cfg))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


_KEY_PATTERNS = (
    re.compile(r"Could not override '([^']+)'"),
    re.compile(r"full_key: ([\w.]+)"),
    re.compile(r"Could not find '([^']+)'"),
    re.compile(r"Error parsing override '([^']+)'"),
    re.compile(r"[Kk]ey '([^']+)' not in"),
)


def _explain(exc: BaseException, overrides: list[str] | tuple[str, ...]) -> str:
    """Turn a Hydra/OmegaConf exception into one line that names the key."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    text = " ".join(str(e) for e in chain)
    key = None
    for pattern in _KEY_PATTERNS:
        if m := pattern.search(text):
            key = m.group(1)
            break
    detail = _first_line(chain[-1])
    if "Value '" in text and "could not be converted" in text:
        m = re.search(r"Value '([^']*)' (?:of type '\w+' )?could not be converted to (\w+)", text)
        if m:
            detail = f"value {m.group(1)!r} is not a valid {m.group(2)}"
    elif "not in" in text or "Could not override" in text:
        detail = "unknown key"
    elif "Could not find" in text:
        detail = "unknown config group option"
    elif "Error parsing override" in text:
        detail = "not a valid override, expected key=value"
    if key is None:
        return f"invalid configuration: {detail}"
    # A group override like `model=foo` reports the group; an override like `train.x=1` the full key.
    override = next((o for o in overrides if o.lstrip("+~").split("=", 1)[0] in (key, key.split("/")[0])), None)
    suffix = f" (override {override!r})" if override else ""
    return f"invalid configuration: {key}: {detail}{suffix}"
