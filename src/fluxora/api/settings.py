"""Service settings: the environment plane (locations, secrets, timeouts), separate from Hydra parameters.

The service's parameters are `ServeConfig`'s fields (less `host`/`port`, which only the CLI
binds); they are declared there once, with their types, defaults and bounds, and become pydantic
fields here, so `FLUXORA_<NAME>` variables set them and their bounds are checked.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_type_hints

from pydantic import Field, SecretStr, create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

from fluxora.config import FluxoraConfig, ServeConfig
from fluxora.errors import ConfigError
from fluxora.paths import Home

log = logging.getLogger("fluxora.api")
MIN_SECRET_BYTES = 32
JWT_ALGORITHM = "HS256"  # pinned: tokens naming any other algorithm (or none) are refused
CLI_ONLY = ("host", "port")  # ServeConfig fields the CLI binds the server with; the app never reads them


def _serve_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(ServeConfig) if f.name not in CLI_ONLY]


def _pydantic_field(f: dataclasses.Field[Any], annotation: Any) -> tuple[Any, Any]:
    """A `ServeConfig` field as a pydantic field definition: same type and default, its metadata
    as constraints (`gt`/`ge` as they are, `choices` as a `Literal` of those values)."""
    constraints = dict(f.metadata)
    choices = constraints.pop("choices", None)
    if choices is not None:
        annotation = Literal.__getitem__(tuple(choices))
    if f.default_factory is not dataclasses.MISSING:
        return annotation, Field(default_factory=f.default_factory, **constraints)
    return annotation, Field(default=f.default, **constraints)


if TYPE_CHECKING:
    # What mypy sees: ServeConfig's attributes with their types. At run time the same fields are
    # pydantic fields made from ServeConfig (below), so they are declared once, in config.py.
    class _ServeSettings(BaseSettings, ServeConfig):
        pass

else:
    _hints = get_type_hints(ServeConfig)
    _ServeSettings = create_model(
        "_ServeSettings", __base__=BaseSettings, **{f.name: _pydantic_field(f, _hints[f.name]) for f in _serve_fields()}
    )


class ServiceSettings(_ServeSettings):
    """Read from FLUXORA_* environment variables; `from_config` fills them from a composed config.

    `FLUXORA_JWT_SECRET` is only ever read from the environment.
    """

    model_config = SettingsConfigDict(env_prefix="FLUXORA_", extra="ignore")

    home: Path
    tracking_uri: str
    model_name: str = "fluxora-load-forecaster"
    database_url: str = ""  # "" -> SQLite under home
    redis_url: str = ""  # "" -> in-memory rate limits
    jwt_secret: SecretStr | None = None

    @classmethod
    def from_config(cls, cfg: FluxoraConfig, home: Home) -> ServiceSettings:
        infra = cfg.infra
        return cls(
            **{f.name: getattr(cfg.serve, f.name) for f in _serve_fields()},
            home=home.root,
            tracking_uri=infra.mlflow_tracking_uri or home.mlflow_tracking_uri,
            model_name=cfg.train.registered_model_name,
            database_url=infra.database_url,
            redis_url=infra.redis_url,
        )

    @property
    def model_cache(self) -> Path:
        return Home(self.home).serving_model_cache

    @property
    def last_known_good(self) -> Path:
        """JSON record of the last model that loaded and passed its smoke prediction."""
        return Home(self.home).last_known_good

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
