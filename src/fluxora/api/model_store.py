"""Holds the model being served and replaces it safely.

- At start: `@champion` from the registry (short timeouts), else the last-known-good copy on
  local disk, verified by checksum, so the service starts while the registry is down.
- While running: `refresh()` (called by a poller thread) checks the alias; when it moved, the
  new version is downloaded, loaded and given a smoke prediction before it replaces the old one.
  A version that fails is refused and remembered; the old one keeps serving.
- Registry outages (server down, tracking database missing) are told apart from a registry that
  answers with no champion: `registry` says whether the last read worked, why not, and when one
  last did; readiness reports `degraded` and `/metrics` `fluxora_registry_up` from it. Nothing is
  created to find out (`registry.check_readable`), and no connection outlives a read, so a
  restored registry is read at the next poll.
- A request takes `store.current` once (one attribute read, atomic) and uses that snapshot
  from start to end, so a swap never mixes two models within a request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fluxora.api.settings import ServiceSettings
from fluxora.errors import RegistryError, RegistryUnavailableError
from fluxora.features.names import LOAD_HISTORY, TEMP_HISTORY
from fluxora.models.native import NativeForecaster, find_model_dir
from fluxora.servicedb.history import ModelEvent

log = logging.getLogger("fluxora.api")
HISTORY_LIMIT = 200


@dataclass(frozen=True)
class LoadedModel:
    version: str
    forecaster: NativeForecaster
    source: str = "registry"  # registry | last-known-good
    loaded_at: datetime | None = None
    reason: str = ""  # why this version is champion (the registry's promotion tag)


@dataclass(frozen=True)
class RegistryStatus:
    """What the last registry read found. `up` is None until the first read."""

    up: bool | None = None
    reason: str = ""  # why the registry is unreachable; "" when up
    last_success: float | None = None  # Unix time of the last successful read


def checksum(directory: Path) -> str:
    """SHA-256 over the relative paths and bytes of every file in a model folder."""
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(path.relative_to(directory).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def smoke_test(forecaster: NativeForecaster) -> None:
    """A forecast from a plausible synthetic state must come back finite and well-shaped."""
    c = forecaster.contract
    hours = {LOAD_HISTORY: (c.load_history_steps, 100.0), TEMP_HISTORY: (c.temp_history_steps, 12.0)}
    state = {
        name: np.full((1, hours.get(name, (1, 1.0))[0]), hours.get(name, (1, 1.0))[1], dtype="float64")
        for name in c.state_features
    }
    origins = np.array([np.datetime64("2024-06-03T12:00", "ns")])
    result = forecaster.forecast(state, origins, c.horizon, c.quantiles)
    if result.point.shape != (1, c.horizon) or not np.isfinite(result.point).all():
        raise ValueError(f"smoke prediction failed: shape {result.point.shape}, values {result.point.ravel()[:3]}")


class ModelStore:
    """The current champion, or None until one is loaded.

    `history` is this process's own events, in memory. `recorder`, when given, also stores each
    event durably (the service passes `ModelEventLog.record`, a database insert) so the history
    outlives the process and is shared by every worker; without one the store works alone."""

    def __init__(
        self,
        settings: ServiceSettings,
        on_event: Callable[[ModelEvent], None] | None = None,
        recorder: Callable[[ModelEvent], None] | None = None,
    ) -> None:
        self._settings = settings
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()  # one load at a time; readers never take it
        self._refused: dict[str, str] = {}
        self._history: deque[ModelEvent] = deque(maxlen=HISTORY_LIMIT)
        self._on_event = on_event
        self._recorder = recorder
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._registry = RegistryStatus()
        self.last_error: str | None = None

    @property
    def retry_after_s(self) -> int:
        return self._settings.retry_after_s

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def registry(self) -> RegistryStatus:
        return self._registry

    def _registry_read(self, error: RegistryUnavailableError | None) -> None:
        """Record the outcome of a registry read (failures are logged by the caller: each poll)."""
        before = self._registry
        if error is None:
            if before.up is False:
                log.info("registry reachable again at %s", self._settings.tracking_uri)
            self._registry = RegistryStatus(True, "", time.time())
        else:
            self._registry = RegistryStatus(False, str(error), before.last_success)

    @property
    def history(self) -> list[ModelEvent]:
        return list(self._history)

    @property
    def refused(self) -> dict[str, str]:
        return dict(self._refused)

    def _registry_env(self) -> None:
        # Short, explicit registry timeouts: a dead tracking server must not hang start-up for minutes.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, int(self._settings.registry_timeout_s))))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    def load_champion(self) -> LoadedModel:
        """Serve the registry's champion; if the registry fails, the last-known-good copy.
        RegistryError when neither gives a usable model."""
        try:
            return self.refresh(force=True)
        except RegistryError as exc:
            try:
                loaded = self.load_last_known_good()
                log.warning("%s; serving the last-known-good copy, version %s", exc, loaded.version)
                return loaded
            except RegistryError as lkg:
                self.last_error = f"{exc}; {lkg}"
                raise RegistryError(f"could not load the champion model: {exc}; {lkg}") from None

    def refresh(self, force: bool = False) -> LoadedModel:
        """Check the alias; load and swap in a new version if it moved. Returns what is served.
        RegistryError when the registry fails or the new version is refused and nothing is served."""
        from fluxora.registry import GATE_TAG, alias_version, download_champion

        self._registry_env()
        s = self._settings
        with self._lock:
            try:
                version, tags = alias_version(s.tracking_uri, s.model_name)
            except RegistryUnavailableError as exc:
                self._registry_read(exc)
                raise
            except RegistryError:  # the registry answered: it has no champion
                self._registry_read(None)
                raise
            self._registry_read(None)
            current = self._current
            if current is not None and current.version == version and not force:
                return current
            if version in self._refused:
                if current is None:
                    raise RegistryError(f"champion version {version} was refused: {self._refused[version]}")
                return current
            reason = tags.get(GATE_TAG, "")
            try:
                version, local = download_champion(s.tracking_uri, s.model_name, s.model_cache)
                model_dir = find_model_dir(local)
                forecaster = NativeForecaster.load(model_dir)
                smoke_test(forecaster)
            except RegistryUnavailableError as exc:
                self._registry_read(exc)
                raise
            except RegistryError:
                raise
            except Exception as exc:  # any failure to load or predict refuses this version
                return self._refuse(version, f"{type(exc).__name__}: {exc}", current)
            loaded = LoadedModel(version, forecaster, "registry", datetime.now(UTC), reason)
            self._swap(loaded)
            self._save_last_known_good(loaded, model_dir)
            return loaded

    def _refuse(self, version: str, why: str, current: LoadedModel | None) -> LoadedModel:
        self._refused[version] = why
        self._record(ModelEvent(datetime.now(UTC), version, "refused", "registry", why))
        log.error("refused model version %s: %s", version, why)
        if current is None:
            self.last_error = f"version {version} refused: {why}"
            raise RegistryError(f"champion version {version} was refused: {why}")
        return current

    def _swap(self, loaded: LoadedModel) -> None:
        self._current = loaded  # a single reference assignment: requests see old or new, never half
        self.last_error = None
        self._record(ModelEvent(datetime.now(UTC), loaded.version, "served", loaded.source, loaded.reason))
        log.info("serving %s version %s (%s)", self._settings.model_name, loaded.version, loaded.source)

    def _record(self, event: ModelEvent) -> None:
        self._history.append(event)
        if self._recorder is not None:
            # Recording is bookkeeping: a database that is down or unmigrated must never stop a
            # model from loading or a swap from happening. The event stays in memory either way.
            try:
                self._recorder(event)
            except Exception:
                log.warning(
                    "could not record model event %s %s in the database", event.event, event.version, exc_info=True
                )
        if self._on_event is not None:
            self._on_event(event)

    def _save_last_known_good(self, loaded: LoadedModel, model_dir: Path) -> None:
        record = {
            "version": loaded.version,
            "path": str(model_dir),
            "sha256": checksum(model_dir),
            "reason": loaded.reason,
            "saved_at": datetime.now(UTC).isoformat(),
        }
        target = self._settings.last_known_good
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record, indent=2))
            tmp.replace(target)  # atomic: a crash leaves the old record or the new, never half
        except OSError as exc:
            log.warning("could not record the last-known-good model: %s", exc)

    def load_last_known_good(self) -> LoadedModel:
        """Load the local copy of the last model that served; refused if its checksum changed."""
        path = self._settings.last_known_good
        with self._lock:
            try:
                record = json.loads(path.read_text())
                model_dir = Path(record["path"])
                if checksum(model_dir) != record["sha256"]:
                    raise ValueError(f"checksum mismatch in {model_dir}")
                forecaster = NativeForecaster.load(model_dir)
                smoke_test(forecaster)
            except FileNotFoundError:
                raise RegistryError("no last-known-good model on disk") from None
            except Exception as exc:
                why = f"last-known-good model refused: {type(exc).__name__}: {exc}"
                self._record(ModelEvent(datetime.now(UTC), str(record.get("version", "?")), "refused", "lkg", why))
                raise RegistryError(why) from None
            loaded = LoadedModel(
                str(record["version"]), forecaster, "last-known-good", datetime.now(UTC), record.get("reason", "")
            )
            self._swap(loaded)
            return loaded

    # --- polling ------------------------------------------------------------------------------

    def start_polling(self) -> None:
        interval = self._settings.poll_interval_s
        if interval <= 0 or self._poller is not None:
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, args=(interval,), name="fluxora-model-poller", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=self._settings.registry_timeout_s + 5)
            self._poller = None

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except RegistryError as exc:
                self.last_error = str(exc) if self._current is None else self.last_error
                log.warning("model poll: %s", exc)
            except Exception:  # the poller must survive anything; the served model stays
                log.exception("model poll failed")


def event_dict(event: ModelEvent) -> dict[str, object]:
    return asdict(event)
