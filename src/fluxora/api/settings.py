"""Service settings: the environment plane (locations, secrets, timeouts), separate from Hydra parameters.

The service's parameters are `ServeConfig`'s fields (less `host`/`port`, which only the CLI
binds); they are declared there once, with their types, defaults and bounds, and become pydantic
fields here, so `FLUXORA_<NAME>` variables set them and their bounds are checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import secrets
import zlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_type_hints

from pydantic import Field, SecretStr, create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

from fluxora.config import FluxoraConfig, ServeConfig
from fluxora.errors import ConfigError
from fluxora.paths import Home

log = logging.getLogger("fluxora.api")
MIN_SECRET_BYTES = 32
MIN_SECRET_ENTROPY_BITS = 128  # estimated (see estimated_entropy_bits): a repeated letter or pattern is refused
ZLIB_OVERHEAD_BYTES = 8  # zlib's header, checksum and block framing: what even a one-letter text costs
GENERATE_SECRET = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
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

    @property
    def forecast_log_wal(self) -> Path:
        """The forecast log's write-ahead files, one folder per service database (rows left by
        a killed process are written at the next start to the database they were meant for)."""
        digest = hashlib.sha256(self.sqlalchemy_url.encode()).hexdigest()[:12]
        return Home(self.home).serving / "forecast-log" / digest

    def production_problems(self) -> list[str]:
        """Every setting production mode refuses, each with what to do; [] in local mode."""
        if self.mode != "production":
            return []
        problems = []
        if problem := secret_problem(self.jwt_secret.get_secret_value() if self.jwt_secret else ""):
            problems.append(f"FLUXORA_JWT_SECRET {problem} ({GENERATE_SECRET})")
        if "*" in self.cors_origins:
            problems.append(
                "serve.cors_origins contains '*': with Authorization and X-API-Key headers allowed, any web "
                "page could call the API with a visitor's credentials; list the exact origins instead, "
                "e.g. cors_origins=[https://dashboard.example.com]"
            )
        if self.rate_limit_per_minute <= 0:
            problems.append(
                "serve.rate_limit_per_minute is 0 (rate limits disabled); set a per-consumer limit, e.g. 600"
            )
        if make_url_backend(self.sqlalchemy_url) == "sqlite":
            problems.append(
                "the service database is SQLite (infra.database_url is empty or sqlite), one file on one machine; "
                "set infra.database_url (FLUXORA_DATABASE_URL with infra=production) to PostgreSQL"
            )
        if not self.redis_url:
            problems.append(
                "infra.redis_url is empty, so rate limits are kept in memory per process and do not hold across "
                "workers; set infra.redis_url (FLUXORA_REDIS_URL with infra=production)"
            )
        return problems

    def check(self) -> None:
        """ConfigError naming every unsafe setting at once when `mode` is production."""
        if problems := self.production_problems():
            raise ConfigError("production mode refuses to start: " + "; ".join(problems))

    def signing_secret(self) -> str:
        """The JWT secret. Production refuses a missing, short or low-entropy one; local mode makes
        an ephemeral one when it is missing or short (tokens then die with the process, API keys
        keep working)."""
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        problem = secret_problem(secret)
        if self.mode == "production":
            if problem is not None:
                raise ConfigError(f"FLUXORA_JWT_SECRET {problem}; production mode refuses to start ({GENERATE_SECRET})")
            return secret
        if len(secret.encode()) >= MIN_SECRET_BYTES:  # local mode: long enough will do, weak is only told
            if problem is not None:
                log.warning("FLUXORA_JWT_SECRET %s; production mode would refuse it", problem)
            return secret
        if secret:
            log.warning("FLUXORA_JWT_SECRET %s; using an ephemeral secret", problem)
        return secrets.token_urlsafe(48)


def make_url_backend(url: str) -> str:
    """The database backend a SQLAlchemy URL names (`sqlite`, `postgresql`, ...)."""
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def estimated_entropy_bits(secret: str) -> float:
    """A conservative estimate of a secret's entropy: the smaller of its characters' Shannon
    entropy times its length (a 48-character run of one letter: 0) and the bits left after
    compressing it (a repeated short pattern: little). A random `token_urlsafe(48)` gives ~320."""
    if not secret:
        return 0.0
    n = len(secret)
    shannon = -sum(c / n * math.log2(c / n) for c in Counter(secret).values()) * n
    compressed = 8 * max(0, len(zlib.compress(secret.encode(), 9)) - ZLIB_OVERHEAD_BYTES)
    return min(shannon, compressed)


def secret_problem(secret: str) -> str | None:
    """Why `secret` is not fit to sign tokens, or None."""
    if not secret:
        return "is not set"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    bits = estimated_entropy_bits(secret)
    if bits < MIN_SECRET_ENTROPY_BITS:
        return f"has too little entropy (about {bits:.0f} bits estimated, at least {MIN_SECRET_ENTROPY_BITS} needed)"
    return None
