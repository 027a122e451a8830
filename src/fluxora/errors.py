"""Typed errors: every failure a user can cause or fix has its own class and a clear message."""


def first_line(exc: BaseException) -> str:
    """An exception's first line (libraries append statements, carets and links), or its type."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class FluxoraError(Exception):
    """Base class for errors Fluxora reports to users without a traceback."""


class ConfigError(FluxoraError):
    """A configuration value or override is unknown or has the wrong type."""


class DataValidationError(FluxoraError):
    """Input data broke a validation rule; nothing downstream was written."""

    def __init__(self, check: str, message: str, series_id: str | None = None) -> None:
        self.check = check
        self.series_id = series_id
        where = f" (series {series_id!r})" if series_id is not None else ""
        super().__init__(f"validation failed [{check}]{where}: {message}")


class InsufficientDataError(FluxoraError):
    """There is not enough data for the requested computation."""


class RegistryError(FluxoraError):
    """The model registry is unreachable or holds no usable model."""


class FeatureStoreError(FluxoraError):
    """The feature store is missing, not applied, or not materialized."""


class DatabaseUnavailableError(FluxoraError):
    """The service database could not be read or written (down, unreachable or not migrated)."""


class RegistryUnavailableError(RegistryError):
    """The registry could not be read at all (server down or refusing, tracking database missing):
    an outage, as opposed to a registry that answers but holds no champion."""
