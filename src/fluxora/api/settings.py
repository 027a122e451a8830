"""Service settings: the environment plane (locations, secrets, timeouts), separate from Hydra parameters."""

from __future__ import annotations

import logging
import secrets
from dataclasses import fields
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from fluxora.config import FluxoraConfig
from fluxora.errors import ConfigError
from fluxora.paths import Home

log = logging.getLogger("fluxora.api")
MIN_SECRET_BYTES = 32
JWT_ALGORITHM = "HS256"  # pinned: tokens naming any other algorithm (or none) are refused


class ServiceSettings(BaseSettings):
    """Read from FLUXORA_* environment variables; `from_config` fills them from a composed config.

    `FLUXORA_JWT_SECRET` is only ever read from the environment.
    """

    model_config = SettingsConfigDict(env_prefix="FLUXORA_", extra="ignore")

    home: Path
    tracking_uri: str
    model_name: str = "fluxora-load-forecaster"
    mode: Literal["local", "production"] = "local"
    registry_timeout_s: float = Field(default=5.0, gt=0)
    retry_after_s: int = Field(default=30, ge=1)
    poll_interval_s: float = Field(default=30.0, ge=0)  # 0: no polling (load once)
    database_url: str = ""  # "" -> SQLite under home
    redis_url: str = ""  # "" -> in-memory rate limits
    jwt_secret: SecretStr | None = None
    jwt_audience: str = "fluxora-api"
    token_ttl_minutes: int = Field(default=60, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    rate_limit_per_minute: int = Field(default=600, ge=0)
    rate_limit_burst: int = Field(default=60, ge=1)
    key_cache_s: float = Field(default=5.0, ge=0)
    max_series_per_request: int = Field(default=100, ge=1)
    log_flush_s: float = Field(default=0.2, gt=0)
    forecast_cache_entries: int = Field(default=4096, ge=0)

    @classmethod
    def from_config(cls, cfg: FluxoraConfig, home: Home) -> ServiceSettings:
        infra = cfg.infra
        # Every serve.* parameter the service knows, by name (host/port are for the CLI only).
        shared = {f.name: getattr(cfg.serve, f.name) for f in fields(cfg.serve) if f.name in cls.model_fields}
        return cls(
            **shared,
            home=home.root,
            tracking_uri=infra.mlflow_tracking_uri or home.mlflow_tracking_uri,
            model_name=cfg.train.registered_model_name,
            database_url=infra.database_url,
            redis_url=infra.redis_url,
        )

    @property
    def model_cache(self) -> Path:
        return self.home / "serving" / "models"

    @property
    def last_known_good(self) -> Path:
        """JSON record of the last model that loaded and passed its smoke prediction."""
        return self.home / "serving" / "last_known_good.json"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or Home(self.home).service_database_url

    def signing_secret(self) -> str:
        """The JWT secret. Production refuses a missing or short one; local mode makes an
        ephemeral one (tokens then die with the process, API keys keep working)."""
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if len(secret.encode()) >= MIN_SECRET_BYTES:
            return secret
        if self.mode == "production":
            problem = "is not set" if not secret else f"is shorter than {MIN_SECRET_BYTES} bytes"
            raise ConfigError(
                f"FLUXORA_JWT_SECRET {problem}; production mode refuses to start "
                '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        if secret:
            log.warning("FLUXORA_JWT_SECRET is shorter than %d bytes; using an ephemeral secret", MIN_SECRET_BYTES)
        return secrets.token_urlsafe(48)
