"""Data drift between a reference and a current window, computed with Evidently 0.7.

`drift_report` cleans both windows (drops columns Evidently cannot analyse), samples
them to a bounded size, runs Evidently's `DataDriftPreset` with its default stattests
and writes three files atomically into ``out_dir``:

* ``{name}.html``            - Evidently's interactive report (~4 MB: it embeds its JS bundle)
* ``{name}.evidently.json``  - Evidently's own snapshot JSON (``Snapshot.json()``)
* ``{name}.json``            - our summary (``DriftResult.to_dict()`` plus window info)

Evidently is imported lazily inside `drift_report` because importing it takes ~8 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fluxora.errors import FluxoraError, InsufficientDataError

log = logging.getLogger(__name__)

# `type` tags in Evidently's snapshot JSON (`Snapshot.dict()` / `Snapshot.json()`).
_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COLUMNS_COUNT = "evidently:metric_v2:DriftedColumnsCount"


@dataclass(frozen=True)
class DriftResult:
    """Outcome of one drift report: dataset verdict, per-column results and written files.

    ``columns[c]["score"]`` is the stattest's p-value (K-S/chi2/Z: lower = more drift) or
    distance (Wasserstein/Jensen-Shannon: higher = more drift); the method used per column
    is recorded under ``"stattests"`` in the summary JSON.
    """

    drifted: bool  # dataset-level drift: drift_share >= drift_share_threshold
    drift_share: float  # share of analysed columns that drifted
    n_columns: int  # columns analysed
    n_drifted: int
    columns: dict[str, dict[str, float | bool]]  # {"score": float, "drifted": bool}
    skipped: dict[str, str]  # column -> reason it was not analysed
    reference_rows: int  # rows analysed (after sampling)
    current_rows: int  # rows analysed (after sampling)
    html_path: Path
    json_path: Path  # our summary JSON
    evidently_json_path: Path  # Evidently's own snapshot JSON

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (paths as str, non-finite scores as None)."""
        return {
            "drifted": bool(self.drifted),
            "drift_share": float(self.drift_share),
            "n_columns": int(self.n_columns),
            "n_drifted": int(self.n_drifted),
            "columns": {
                col: {key: _json_scalar(value) for key, value in res.items()} for col, res in self.columns.items()
            },
            "skipped": dict(self.skipped),
            "reference_rows": int(self.reference_rows),
            "current_rows": int(self.current_rows),
            "html_path": str(self.html_path),
            "json_path": str(self.json_path),
            "evidently_json_path": str(self.evidently_json_path),
        }


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    out_dir: Path,
    *,
    name: str = "drift",
    drift_share_threshold: float = 0.5,
    max_rows: int = 50_000,
    seed: int = 0,
) -> DriftResult:
    """Compare `current` with `reference` on numeric `columns` and write the drift report.

    Columns that are missing, non-numeric, all-NaN/inf or constant in either window are
    skipped (with a reason in `DriftResult.skipped`). Each window is sampled down to
    `max_rows` rows with a seeded RNG. Per-column drift is Evidently's own decision with
    its default stattest; the dataset drifts when the drifted share >= `drift_share_threshold`.

    Raises:
        InsufficientDataError: a window is empty or no requested column can be analysed.
        ValueError: invalid arguments.
        FluxoraError: Evidently failed or returned results in an unexpected shape.
    """
    started = time.perf_counter()
    _validate_args(reference, current, name, drift_share_threshold, max_rows, seed)
    if len(reference) == 0 or len(current) == 0:
        raise InsufficientDataError(
            f"drift report {name!r}: cannot compare windows, "
            f"reference has {len(reference)} rows and current has {len(current)} rows"
        )
    wanted = list(dict.fromkeys(columns))  # de-duplicate, keep order
    if not wanted:
        raise InsufficientDataError(f"drift report {name!r}: no columns were requested")

    ref_pos = _sample_positions(len(reference), max_rows, np.random.default_rng([seed, 0]))
    cur_pos = _sample_positions(len(current), max_rows, np.random.default_rng([seed, 1]))
    ref_values, ref_reasons = _extract(reference, wanted, ref_pos, "reference")
    cur_values, cur_reasons = _extract(current, wanted, cur_pos, "current")

    skipped: dict[str, str] = {}
    kept: list[str] = []
    for col in wanted:
        reasons = [r for r in (ref_reasons.get(col), cur_reasons.get(col)) if r]
        if reasons:
            skipped[col] = "; ".join(reasons)
        else:
            kept.append(col)
    if not kept:
        details = ", ".join(f"{c!r}: {r}" for c, r in skipped.items())
        raise InsufficientDataError(f"drift report {name!r}: no column can be analysed ({details})")

    ref_frame = pd.DataFrame({c: ref_values[c] for c in kept})
    cur_frame = pd.DataFrame({c: cur_values[c] for c in kept})
    snapshot, evidently_json, evidently_version = _run_evidently(
        ref_frame, cur_frame, kept, drift_share_threshold, name
    )
    payload = json.loads(evidently_json)
    per_column, stattests, ev_count = _parse_snapshot(payload, kept, name)

    n_drifted = sum(1 for res in per_column.values() if res["drifted"])
    drift_share = n_drifted / len(kept)
    if ev_count is not None and int(ev_count["count"]) != n_drifted:
        log.warning(
            "drift report %r: Evidently's DriftedColumnsCount (%s) disagrees with its "
            "per-column decisions (%d); using the per-column decisions",
            name,
            ev_count["count"],
            n_drifted,
        )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = DriftResult(
        drifted=drift_share >= drift_share_threshold,
        drift_share=drift_share,
        n_columns=len(kept),
        n_drifted=n_drifted,
        columns=per_column,
        skipped=skipped,
        reference_rows=len(ref_frame),
        current_rows=len(cur_frame),
        html_path=out_dir / f"{name}.html",
        json_path=out_dir / f"{name}.json",
        evidently_json_path=out_dir / f"{name}.evidently.json",
    )
    summary = {
        **result.to_dict(),
        "drift_share_threshold": drift_share_threshold,
        "stattests": stattests,
        "evidently_drift_count": None if ev_count is None else int(ev_count["count"]),
        "evidently_drift_share": None if ev_count is None else _json_scalar(ev_count["share"]),
        "window": {
            "reference": _window_info(reference, len(ref_frame)),
            "current": _window_info(current, len(cur_frame)),
            "max_rows": max_rows,
            "seed": seed,
        },
        "evidently_version": evidently_version,
        "generated_at": datetime.now(UTC).isoformat(),
    }
    _write_outputs(snapshot, evidently_json, summary, result, name)
    log.info(
        "drift report %r: %d/%d columns drifted (share %.2f, threshold %.2f, drifted=%s), "
        "%d skipped, %d/%d rows, %.1fs",
        name,
        n_drifted,
        len(kept),
        drift_share,
        drift_share_threshold,
        result.drifted,
        len(skipped),
        result.reference_rows,
        result.current_rows,
        time.perf_counter() - started,
    )
    return result


def _validate_args(
    reference: object,
    current: object,
    name: str,
    threshold: float,
    max_rows: int,
    seed: int,
) -> None:
    """Reject arguments that would make the report meaningless or write outside out_dir."""
    for label, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"{label} must be a pandas DataFrame, got {type(frame).__name__}")
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"drift_share_threshold must be in (0, 1], got {threshold!r}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")


def _sample_positions(n_rows: int, max_rows: int, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted row positions of a seeded sample without replacement, or None to keep all rows."""
    if n_rows <= max_rows:
        return None
    return np.sort(rng.choice(n_rows, size=max_rows, replace=False))


def _extract(
    frame: pd.DataFrame, columns: list[str], positions: np.ndarray | None, label: str
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return float64 values (inf -> NaN) per usable column and a skip reason per unusable one."""
    values: dict[str, np.ndarray] = {}
    reasons: dict[str, str] = {}
    for col in columns:
        hits = int((frame.columns == col).sum())
        if hits == 0:
            reasons[col] = f"missing from {label} window"
            continue
        if hits > 1:
            reasons[col] = f"duplicate column label in {label} window"
            continue
        series = frame[col]
        dtype = series.dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
            reasons[col] = f"non-numeric dtype {dtype} in {label} window"
            continue
        arr = series.to_numpy(dtype="float64", na_value=np.nan)
        if positions is not None:
            arr = arr[positions]
        arr[~np.isfinite(arr)] = np.nan
        finite = arr[~np.isnan(arr)]
        if finite.size == 0:
            reasons[col] = f"all values NaN/inf in {label} window"
        elif finite.min() == finite.max():
            reasons[col] = f"constant in {label} window (every value is {finite[0]:g})"
        else:
            values[col] = arr
    return values, reasons


def _run_evidently(
    ref_frame: pd.DataFrame,
    cur_frame: pd.DataFrame,
    columns: list[str],
    threshold: float,
    name: str,
) -> tuple[Any, str, str]:
    """Run Evidently's DataDriftPreset; return (snapshot, snapshot JSON text, evidently version)."""
    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=columns)
    # include_tests=True is required: the per-column drift decision only appears in the
    # snapshot as the status of the auto-generated ValueDrift test.
    report = Report([DataDriftPreset(columns=columns, drift_share=threshold)], include_tests=True)
    try:
        snapshot = report.run(
            current_data=Dataset.from_pandas(cur_frame, data_definition=definition),
            reference_data=Dataset.from_pandas(ref_frame, data_definition=definition),
        )
        evidently_json = snapshot.json()
    except Exception as exc:
        raise FluxoraError(f"drift report {name!r}: Evidently failed: {exc}") from exc
    return snapshot, evidently_json, evidently.__version__


def _parse_snapshot(
    payload: dict[str, Any], columns: list[str], name: str
) -> tuple[dict[str, dict[str, float | bool]], dict[str, dict[str, Any]], dict[str, Any] | None]:
    """Read per-column score/decision/stattest and the DriftedColumnsCount value from snapshot JSON.

    Per column: ``metrics[i]`` with ``config.type == ValueDrift`` holds ``config.column``,
    ``config.method``, ``config.threshold`` (resolved defaults) and ``value`` (the score);
    the test in ``tests`` whose ``metric_config.metric_id == metrics[i].id`` has
    ``status`` "FAIL" (drift detected) or "SUCCESS" (no drift).
    """
    metrics = payload.get("metrics", [])
    status_by_metric = {
        t["metric_config"]["metric_id"]: t["status"]
        for t in payload.get("tests", [])
        if t.get("metric_config", {}).get("params", {}).get("type") == _VALUE_DRIFT
    }
    per_column: dict[str, dict[str, float | bool]] = {}
    stattests: dict[str, dict[str, Any]] = {}
    ev_count: dict[str, Any] | None = None
    for metric in metrics:
        config = metric.get("config", {})
        if config.get("type") == _DRIFTED_COLUMNS_COUNT:
            ev_count = metric["value"]
        elif config.get("type") == _VALUE_DRIFT:
            col = config["column"]
            status = status_by_metric.get(metric["id"])
            if status not in ("FAIL", "SUCCESS"):
                raise FluxoraError(
                    f"drift report {name!r}: Evidently gave no drift decision for column "
                    f"{col!r} (test status {status!r})"
                )
            per_column[col] = {
                "score": float(metric["value"]),
                "drifted": status == "FAIL",
            }
            stattests[col] = {
                "method": config.get("method"),
                "threshold": config.get("threshold"),
            }
    missing = [c for c in columns if c not in per_column]
    if missing:
        raise FluxoraError(f"drift report {name!r}: Evidently returned no drift result for {missing}")
    return (
        {c: per_column[c] for c in columns},
        {c: stattests[c] for c in columns},
        ev_count,
    )


def _window_info(frame: pd.DataFrame, rows_used: int) -> dict[str, Any]:
    """Row counts and, for a DatetimeIndex, the time span of one (unsampled) window."""
    start = end = None
    if isinstance(frame.index, pd.DatetimeIndex) and len(frame.index):
        lo, hi = frame.index.min(), frame.index.max()
        start = None if pd.isna(lo) else lo.isoformat()
        end = None if pd.isna(hi) else hi.isoformat()
    return {
        "rows_total": len(frame),
        "rows_used": rows_used,
        "sampled": rows_used < len(frame),
        "start": start,
        "end": end,
    }


def _json_scalar(value: Any) -> Any:
    """Convert numpy scalars to Python ones and non-finite floats to None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _write_outputs(
    snapshot: Any,
    evidently_json: str,
    summary: dict[str, Any],
    result: DriftResult,
    name: str,
) -> None:
    """Write all three files to temp files in out_dir, then os.replace them into place.

    The summary JSON is replaced last, so its presence means the whole report is complete.
    """
    out_dir = result.json_path.parent
    temps: list[Path] = []

    def new_temp() -> Path:
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        path = Path(tmp)
        temps.append(path)
        return path

    try:
        html_tmp = new_temp()
        # Quirk: Snapshot.save_html only writes when given a str; a Path is silently ignored.
        snapshot.save_html(str(html_tmp))
        if html_tmp.stat().st_size == 0:
            raise FluxoraError(f"drift report {name!r}: Evidently wrote an empty HTML report")
        ev_tmp = new_temp()
        ev_tmp.write_text(evidently_json, encoding="utf-8")
        summary_tmp = new_temp()
        summary_tmp.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        for tmp in temps:
            os.chmod(tmp, 0o644)  # mkstemp creates 0600
            _fsync(tmp)
        os.replace(html_tmp, result.html_path)
        os.replace(ev_tmp, result.evidently_json_path)
        os.replace(summary_tmp, result.json_path)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _fsync(path: Path) -> None:
    """Flush a written file to disk before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
