"""Holds the model being served. A request takes one snapshot and uses it throughout."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from fluxora.api.settings import ServiceSettings
from fluxora.errors import RegistryError
from fluxora.models.native import NativeForecaster, find_model_dir

log = logging.getLogger("fluxora.api")


@dataclass(frozen=True)
class LoadedModel:
    version: str
    forecaster: NativeForecaster


class ModelStore:
    """The current champion, or None until one is loaded."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def retry_after_s(self) -> int:
        return self._settings.retry_after_s

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def load_champion(self) -> LoadedModel:
        """Fetch `models:/<name>@champion` from the registry and make it current."""
        from fluxora.registry import download_champion

        s = self._settings
        # Short, explicit registry timeouts: a dead tracking server must not hang start-up for minutes.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(s.registry_timeout_s)))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        with self._lock:
            try:
                version, local = download_champion(s.tracking_uri, s.model_name, s.model_cache)
                loaded = LoadedModel(version, NativeForecaster.load(find_model_dir(local)))
            except (RegistryError, OSError, ValueError) as exc:
                self.last_error = str(exc)
                raise RegistryError(f"could not load the champion model: {exc}") from exc
            self._current = loaded
            self.last_error = None
            log.info("serving %s version %s", s.model_name, version)
            return loaded
