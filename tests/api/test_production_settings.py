"""`serve=production` refuses unsafe settings at start, naming each and what to do; secrets are
redacted wherever a configuration is printed or logged (one function, `config.redact`)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fluxora import cli, registry
from fluxora.api.app import create_app
from fluxora.api.settings import ServiceSettings, estimated_entropy_bits
from fluxora.config import compose, redact, to_yaml
from fluxora.errors import ConfigError
from fluxora.paths import project_root

PASSWORD = "Zx9-very-secret-pw"
DATABASE_URL = f"postgresql+psycopg://fluxora:{PASSWORD}@db.internal:5432/fluxora"
REDIS_URL = f"redis://:{PASSWORD}@cache.internal:6379/0"


def _production(tmp_path: Path, **update: Any) -> ServiceSettings:
    """Settings production accepts: a random secret, PostgreSQL, Redis, limits on, exact origins."""
    safe: dict[str, Any] = {
        "home": tmp_path,
        "tracking_uri": "http://127.0.0.1:9",
        "mode": "production",
        "jwt_secret": SecretStr(secrets.token_urlsafe(48)),
        "database_url": DATABASE_URL,
        "redis_url": REDIS_URL,
        "cors_origins": ["https://dashboard.example.com"],
        "rate_limit_per_minute": 600,
    }
    return ServiceSettings(**(safe | update))


def test_safe_production_settings_start(tmp_path: Path) -> None:
    settings = _production(tmp_path)
    assert settings.production_problems() == []
    create_app(settings)  # builds without connecting anywhere


@pytest.mark.parametrize(
    ("update", "named", "advice"),
    [
        ({"cors_origins": ["*"]}, "serve.cors_origins contains '*'", "list the exact origins"),
        ({"cors_origins": ["https://ok.example", "*"]}, "serve.cors_origins contains '*'", "list the exact origins"),
        ({"rate_limit_per_minute": 0}, "serve.rate_limit_per_minute is 0", "set a per-consumer limit"),
        ({"database_url": ""}, "the service database is SQLite", "to PostgreSQL"),
        ({"database_url": "sqlite:////srv/api.db"}, "the service database is SQLite", "to PostgreSQL"),
        ({"redis_url": ""}, "infra.redis_url is empty", "FLUXORA_REDIS_URL"),
        ({"jwt_secret": SecretStr("a" * 48)}, "FLUXORA_JWT_SECRET has too little entropy", "token_urlsafe(48)"),
        ({"jwt_secret": SecretStr("abcdefgh" * 6)}, "FLUXORA_JWT_SECRET has too little entropy", "token_urlsafe"),
        ({"jwt_secret": SecretStr("p" * 32)}, "FLUXORA_JWT_SECRET has too little entropy", "token_urlsafe"),
        ({"jwt_secret": None}, "FLUXORA_JWT_SECRET is not set", "token_urlsafe"),
    ],
)
def test_production_refuses_unsafe_setting(tmp_path: Path, update: dict[str, Any], named: str, advice: str) -> None:
    with pytest.raises(ConfigError, match="production mode refuses to start") as info:
        create_app(_production(tmp_path, **update))
    message = str(info.value)
    assert named in message and advice in message
    assert "\n" not in message
    assert PASSWORD not in message


def test_every_unsafe_setting_is_named_at_once(tmp_path: Path) -> None:
    settings = ServiceSettings(
        home=tmp_path, tracking_uri="http://127.0.0.1:9", mode="production", jwt_secret=SecretStr("a" * 48),
        cors_origins=["*"], rate_limit_per_minute=0,
    )  # fmt: skip
    assert len(settings.production_problems()) == 5
    with pytest.raises(ConfigError) as info:
        create_app(settings)
    for part in ("FLUXORA_JWT_SECRET", "cors_origins", "rate_limit_per_minute", "SQLite", "redis_url"):
        assert part in str(info.value)


def test_local_mode_accepts_what_production_refuses(tmp_path: Path) -> None:
    settings = ServiceSettings(home=tmp_path, tracking_uri="http://127.0.0.1:9", cors_origins=["*"])
    assert settings.production_problems() == []
    create_app(settings)


def test_entropy_estimate_separates_random_from_repeated() -> None:
    assert estimated_entropy_bits("a" * 48) == 0
    assert estimated_entropy_bits("abcdefgh" * 6) < 128
    for _ in range(20):
        assert estimated_entropy_bits(secrets.token_urlsafe(32)) >= 128
        assert estimated_entropy_bits(secrets.token_hex(32)) >= 128


def test_config_show_redacts_passwords(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLUXORA_DATABASE_URL", DATABASE_URL)
    monkeypatch.setenv("FLUXORA_FEAST_REGISTRY_URL", DATABASE_URL)
    monkeypatch.setenv("FLUXORA_REDIS_URL", REDIS_URL)
    assert cli.main(["config", "show", "infra=production"]) == 0
    shown = capsys.readouterr().out
    assert PASSWORD not in shown
    assert "database_url: postgresql+psycopg://fluxora:***@db.internal:5432/fluxora" in shown
    assert "redis_url: redis://:***@cache.internal:6379/0" in shown


def test_run_parameters_are_redacted_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXORA_DATABASE_URL", DATABASE_URL)
    monkeypatch.setenv("FLUXORA_REDIS_URL", REDIS_URL)
    cfg = compose(["infra=production"])
    params = registry._params(cfg.to_dict())  # what log_and_register logs to the MLflow run
    assert PASSWORD not in str(params)
    assert (
        params["infra.database_url"]
        == redact(DATABASE_URL)
        == "postgresql+psycopg://fluxora:***@db.internal:5432/fluxora"
    )
    assert params["infra.redis_url"] == redact(REDIS_URL)
    assert params["train.horizon"] == cfg.train.horizon  # everything else as it was


def test_redaction_leaves_the_default_export_unchanged() -> None:
    cfg = compose([])
    assert redact(cfg) == cfg  # nothing to hide locally
    assert to_yaml(cfg) == (project_root() / "params.yaml").read_text()
