"""Registry outages against a real MLflow SQLite registry: the service never creates the tracking
database, says `degraded` (readiness, `fluxora_registry_up`) while it serves the model it has, logs
"registry unreachable" rather than "no champion", and sees promotions again within a poll once the
real registry is back, without a restart."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_record import FaultRecorder

from fluxora.api.model_store import ModelStore
from fluxora.api.settings import ServiceSettings
from fluxora.config import FluxoraConfig
from fluxora.errors import RegistryError, RegistryUnavailableError
from fluxora.paths import Home
from fluxora.registry import alias_version

pytestmark = pytest.mark.fault

POLL_S = 0.2


def _client(uri: str) -> object:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture
def registry(tmp_path: Path, trained_home: Home) -> tuple[Path, Home]:
    """A private copy of the session registry (its folder, as the outage removes it) and a
    service home reading the session's online store."""
    folder = tmp_path / "mlflow"
    folder.mkdir()
    shutil.copy(trained_home.mlflow_db, folder / "mlflow.db")
    home = Home(tmp_path / "home")
    home.root.mkdir()
    (home.root / "feast").symlink_to(trained_home.feast_repo, target_is_directory=True)
    return folder, home


def _uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def _new_version(uri: str, name: str, champion_dir: Path, target: Path) -> str:
    """A second version (a changed base score: valid, different forecasts), not promoted."""
    shutil.copytree(champion_dir, target)
    raw = json.loads((target / "model.json").read_text())
    params = raw["learner"]["learner_model_param"]
    params["base_score"] = "[2.5E0]" if params["base_score"] != "[2.5E0]" else "[3.5E0]"
    (target / "model.json").write_text(json.dumps(raw))
    return str(_client(uri).create_model_version(name, source=str(target)).version)  # type: ignore[attr-defined]


def _promote_while_away(folder: Path, away: Path, name: str, version: str) -> None:
    """Promote `version` in the moved-away registry, then put the registry back where it was
    (whatever the service may have left at the path is removed first, as an operator would)."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    uri = _uri(away)
    _client(uri).set_registered_model_alias(name, "champion", version)  # type: ignore[attr-defined]
    engine = SqlAlchemyStore._engine_map.pop(uri, None)
    if engine is not None:
        engine.dispose()
    if folder.exists():
        shutil.rmtree(folder)
    os.rename(away, folder)


def _until(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """A generous bound for a loaded machine, not a speed check."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def _settings(cfg: FluxoraConfig, home: Home, uri: str, **update: object) -> ServiceSettings:
    base = ServiceSettings.from_config(cfg, home)
    return base.model_copy(update={"tracking_uri": uri, "poll_interval_s": POLL_S, **update})


def test_missing_registry_is_unavailable_and_not_created(tmp_path: Path) -> None:
    db = tmp_path / "gone" / "mlflow.db"
    with pytest.raises(RegistryUnavailableError, match=r"registry unreachable.*does not exist"):
        alias_version(f"sqlite:///{db}", "m")
    assert not db.parent.exists()  # neither the file nor its folder

    empty = tmp_path / "empty.db"
    empty.touch()  # a file that is not a registry: refused, never given MLflow's schema
    with pytest.raises(RegistryUnavailableError, match="no MLflow registry tables"):
        alias_version(f"sqlite:///{empty}", "m")
    assert empty.stat().st_size == 0


def test_registry_without_champion_is_no_champion_not_an_outage(registry: tuple[Path, Home]) -> None:
    folder, _ = registry
    with pytest.raises(RegistryError, match="no champion") as info:
        alias_version(_uri(folder), "no-such-model")
    assert not isinstance(info.value, RegistryUnavailableError)


def test_registry_removed_then_restored_is_followed_by_the_poller(
    tiny_cfg: FluxoraConfig,
    champion_dir: Path,
    registry: tuple[Path, Home],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fault_record: FaultRecorder,
) -> None:
    folder, home = registry
    name = tiny_cfg.train.registered_model_name
    store = ModelStore(_settings(tiny_cfg, home, _uri(folder)))
    v1 = store.load_champion()
    assert store.registry.up is True and store.registry.last_success is not None
    v2 = _new_version(_uri(folder), name, champion_dir, tmp_path / "v2")

    away = tmp_path / "mlflow-away"
    store.start_polling()
    try:
        with caplog.at_level(logging.WARNING, logger="fluxora.api"):
            os.rename(folder, away)
            assert _until(lambda: store.registry.up is False)
            time.sleep(3 * POLL_S)  # a few more polls against the missing registry
        assert not folder.exists(), "the service created a tracking database"
        assert store.current is v1  # still serving what it had
        assert "registry unreachable" in store.registry.reason
        assert "registry unreachable" in caplog.text and "no champion" not in caplog.text

        _promote_while_away(folder, away, name, v2)
        recovered = _until(lambda: store.current is not None and store.current.version == v2)
        fault_record(not_recovered=not recovered)
        assert recovered
    finally:
        store.stop_polling()
    assert store.registry.up is True and store.registry.reason == ""
    assert v2 != v1.version


def test_service_started_during_an_outage_is_degraded_then_recovers(
    tiny_cfg: FluxoraConfig,
    champion_dir: Path,
    registry: tuple[Path, Home],
    tmp_path: Path,
    fault_record: FaultRecorder,
) -> None:
    from fastapi.testclient import TestClient
    from serving_support import settings_for

    from fluxora.api.app import create_app

    folder, home = registry
    name, uri = tiny_cfg.train.registered_model_name, _uri(folder)
    v1 = ModelStore(_settings(tiny_cfg, home, uri)).load_champion()  # an earlier run left a last-known-good copy
    v2 = _new_version(uri, name, champion_dir, tmp_path / "v2")
    away = tmp_path / "mlflow-away"
    os.rename(folder, away)

    app = create_app(settings_for(tiny_cfg, home, tracking_uri=uri, poll_interval_s=POLL_S))
    with TestClient(app) as c:
        ready = c.get("/health/ready")
        fault_record.responses(ready)
        assert ready.status_code == 200, ready.text  # a model serves: kept in rotation, flagged
        body = ready.json()
        assert body["status"] == "degraded" and body["model_version"] == v1.version
        assert body["detail"].startswith("registry unreachable") and "last-known-good" in body["detail"]
        metrics = c.get("/metrics").text
        assert "fluxora_registry_up 0.0" in metrics
        assert "fluxora_registry_last_success_timestamp_seconds 0.0" in metrics
        assert not folder.exists(), "the service created a tracking database"

        _promote_while_away(folder, away, name, v2)
        recovered = _until(lambda: c.get("/health/ready").json()["model_version"] == v2)
        fault_record(not_recovered=not recovered)
        assert recovered
        ready = c.get("/health/ready").json()
        assert ready["status"] == "ready" and ready["detail"] is None
        metrics = c.get("/metrics").text
        assert "fluxora_registry_up 1.0" in metrics
        assert "fluxora_registry_last_success_timestamp_seconds 0.0" not in metrics
