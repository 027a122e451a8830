"""Ingest and validate: the raw canonical table from the configured source, then the gate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fluxora.config import FluxoraConfig
from fluxora.data import io
from fluxora.data.schema import SERIES_ID, TIMESTAMP
from fluxora.paths import Home
from fluxora.steps import cache
from fluxora.steps.base import StepResult

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

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
    """Run the validation gate; write the report always, validated data only when the gate passes.

    The raw table is read `data.batch_series` series at a time and each batch's validated,
    quarantined and repaired rows are appended to temporary files, moved into place only when
    the whole gate passed (the validated table last): memory holds one batch, not the data.
    """
    from fluxora.data.errors import GateFailedError
    from fluxora.data.frames import ROW
    from fluxora.data.gate import auto_model_freq, run_batches
    from fluxora.data.ingest import batch_size
    from fluxora.data.report import write_report

    size = batch_size(cfg.data)
    key = cache.Key(io.file_digest(home.raw_data), cache.config_hash(cfg.data))
    if (cached := cache.lookup(home, "validate", key)) is not None:
        return ValidateResult(**(cached | {"cached": True}))
    batches = io.SeriesBatches(home.raw_data, size, SERIES_ID)
    files = [
        io.ParquetAppender(home.validated_data),
        io.ParquetAppender(home.quarantine, _quarantine_schema),
        io.ParquetAppender(home.repairs, _repairs_schema),
    ]

    def sink(out: pd.DataFrame, quarantine: pd.DataFrame, repairs: pd.DataFrame) -> None:
        files[0].append(out)
        files[1].append(quarantine.drop(columns=[ROW]))
        files[2].append(repairs)

    try:
        gate, data = cfg.data.gate, cfg.data
        freq = data.freq
        if freq == "auto":  # the data's own resolution: one pass over the stamps, a batch at a time
            pass_ = io.SeriesBatches(home.raw_data, size, SERIES_ID)
            freq = auto_model_freq(
                (raw[[c for c in (SERIES_ID, TIMESTAMP) if c in raw]] for raw, _ in pass_), data.resolution
            )
        report = run_batches(batches, gate, freq, data.resolution, batches.rows, batches.series, sink)
    except GateFailedError as exc:
        for file in files:
            file.discard()
        home.validated_data.unlink(missing_ok=True)  # a stale copy must not feed the next steps
        write_report(exc.report, home.reports)
        raise
    except BaseException:
        for file in files:
            file.discard()
        raise
    files[1].commit()
    files[2].commit()
    json_path, text_path = write_report(report, home.reports)
    files[0].commit()  # last: validated data exists only for a gate that passed and was reported
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
    outputs = [home.validated_data, home.quarantine, home.repairs, json_path, text_path]
    cache.record(home, "validate", key, out.outputs(), outputs)
    return out


def _quarantine_schema(df: pd.DataFrame) -> pa.Schema:
    """The quarantine file's columns: input columns (text ids and issues, UTC time, float values), check, reason."""
    import pyarrow as pa

    from fluxora.data.frames import CHECK, REASON
    from fluxora.data.sources import ISSUE

    def kind(name: str) -> pa.DataType:
        if name in (SERIES_ID, ISSUE, CHECK, REASON):
            return pa.string()
        return pa.timestamp("ns", tz="UTC") if name == TIMESTAMP else pa.float64()

    return pa.schema([pa.field(str(name), kind(str(name))) for name in df.columns])


def _repairs_schema(df: pd.DataFrame) -> pa.Schema:
    import pyarrow as pa

    from fluxora.data.frames import CHECK

    text = pa.string()
    fields = {SERIES_ID: text, TIMESTAMP: pa.timestamp("ns", tz="UTC"), CHECK: text, "column": text}
    return pa.schema([pa.field(name, fields.get(name, pa.float64())) for name in df.columns])
