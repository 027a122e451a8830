"""Writing the gate's outputs: the JSON + text report, the quarantine and repairs files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fluxora.data import io
from fluxora.data.gate import render_text

REPORT_NAME = "validation"
QUARANTINE_FILE = "quarantine.parquet"  # under $FLUXORA_HOME/data: rows moved out, with check and reason
REPAIRS_FILE = "repairs.parquet"  # values the gate changed or inserted, with the original


def write_report(report: dict[str, Any], reports_dir: Path) -> tuple[Path, Path]:
    """`validation.json` (machine) and `validation.txt` (human), atomically."""
    json_path = io.atomic_write_text(reports_dir / f"{REPORT_NAME}.json", json.dumps(report, indent=2, default=str))
    text_path = io.atomic_write_text(reports_dir / f"{REPORT_NAME}.txt", render_text(report))
    return json_path, text_path
