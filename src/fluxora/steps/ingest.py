"""Ingest and validate: the raw canonical table from the configured source, then the gate."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.schema import SERIES_ID
from fluxora.paths import Home
from fluxora.steps import cache
from fluxora.steps.base import StepResult

log = logging.getLogger("fluxora.data")


@dataclass(frozen=True)
class IngestResult(StepResult):
    step = "ingest"
    path: str
    rows: int
    series: int
    source: str


@dataclass(frozen=True)
class ValidateResult(StepResult):
    step = "validate"
    path: str
    rows: int
    series: int
    start: str | None
    end: str | None
    rows_in: int
    rows_out: int
    rows_quarantined: int
    rows_repaired: int
    report: str
    cached: bool = False  # True: the same data and gate config were validated before; reused


def ingest(cfg: FluxoraConfig, home: Home) -> IngestResult:
    """Produce the raw canonical table from the configured source (synthetic or files)."""
    from fluxora.data.ingest import ingest as ingest_source
    from fluxora.features.calendar import holiday_warning
    from fluxora.paths import project_root

    fc = cfg.features
    if warning := holiday_warning(cfg.data.source, fc.holiday_country, fc.timezone):
        log.warning(warning)
    summary = ingest_source(cfg.data, home.raw_data, project_root())
    return IngestResult(str(home.raw_data), summary.rows, summary.series, summary.source)


def validate(cfg: FluxoraConfig, home: Home) -> ValidateResult:
    """Run the validation gate; write the report always, validated data only when the gate passes."""
    from fluxora.data.errors import GateFailedError
    from fluxora.data.gate import run_gate
    from fluxora.data.report import write_report

    key = cache.Key(io.file_digest(home.raw_data), cache.config_hash(cfg.data))
    if (cached := cache.lookup(home, "validate", key)) is not None:
        return ValidateResult(**(cached | {"cached": True}))
    try:
        raw = io.read_parquet(home.raw_data, categories=[SERIES_ID])
        result = run_gate(raw, cfg.data.gate, cfg.data.freq, cfg.data.resolution)
    except GateFailedError as exc:
        home.validated_data.unlink(missing_ok=True)  # a stale copy must not feed the next steps
        write_report(exc.report, home.reports)
        raise
    io.write_parquet(result.quarantine, home.quarantine)
    io.write_parquet(result.repairs, home.repairs)
    json_path, text_path = write_report(result.report, home.reports)
    io.write_parquet(result.data, home.validated_data)
    report = result.report
    out = ValidateResult(
        path=str(home.validated_data),
        rows=report["rows_written"],
        series=report["series_out"],
        start=report["start"],
        end=report["end"],
        rows_in=report["rows_in"],
        rows_out=report["rows_out"],
        rows_quarantined=report["rows_quarantined"],
        rows_repaired=report["rows_repaired"],
        report=str(json_path),
    )
    files = [home.validated_data, home.quarantine, home.repairs, json_path, text_path]
    cache.record(home, "validate", key, out.outputs(), files)
    return out
