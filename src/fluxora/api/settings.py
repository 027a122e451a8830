"""Service settings: the environment plane (locations, timeouts), separate from Hydra parameters."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fluxora.config import FluxoraConfig
from fluxora.paths import Home


class ServiceSettings(BaseSettings):
    """Read from FLUXORA_* environment variables; `from_config` fills them from a composed config."""

    model_config = SettingsConfigDict(env_prefix="FLUXORA_", extra="ignore")

    home: Path
    tracking_uri: str
    model_name: str = "fluxora-load-forecaster"
    registry_timeout_s: float = Field(default=5.0, gt=0)
    retry_after_s: int = Field(default=30, ge=1)

    @classmethod
    def from_config(cls, cfg: FluxoraConfig, home: Home) -> ServiceSettings:
        return cls(home=home.root, tracking_uri=home.mlflow_tracking_uri, model_name=cfg.train.registered_model_name)

    @property
    def model_cache(self) -> Path:
        return self.home / "serving" / "models"
