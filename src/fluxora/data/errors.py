"""Typed errors of the data layer; each message is one line a user can act on."""

from __future__ import annotations

from typing import Any

from fluxora.errors import DataValidationError, FluxoraError


class DataSourceError(FluxoraError):
    """A source could not be read as load data (missing file, wrong delimiter, no rows, ...)."""


class UnsafePathError(DataSourceError):
    """A path from config or a request points outside the configured roots."""


class ConnectorError(DataSourceError):
    """A remote data provider failed or answered with something we cannot use."""


class GateFailedError(DataValidationError):
    """The validation gate stopped the pipeline; `report` is the written validation report."""

    def __init__(self, check: str, message: str, report: dict[str, Any], series_id: str | None = None) -> None:
        super().__init__(check, message, series_id=series_id)
        self.report = report
