"""Step results cached on (data version, config hash): a rerun after a crash redoes only what is missing.

A step that finished records, last and atomically, its key (the digest of its input file and a
hash of the config sections it reads) and its output files (size and modification time) in
`FLUXORA_HOME/cache/steps/<step>.json`. A later run with the same key whose output files are
still as recorded reuses the outputs. Anything else recomputes: other data, other config, a
missing or rewritten output, or a step that was killed before it finished (it recorded nothing).
Training needs no entry here: the registry already knows the version made from (data, config).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from fluxora.data.io import atomic_write_text
from fluxora.paths import Home

FORMAT = 2  # bump when a step's outputs change meaning, so old records are not reused (2: weather at the model step)


@dataclass(frozen=True)
class Key:
    data_version: str  # digest of the step's input file
    config_hash: str  # hash of the config sections the step reads


def config_hash(*parts: Any) -> str:
    """Stable hash of config sections (dataclasses) and plain values."""
    blob = json.dumps([asdict(p) if is_dataclass(p) else p for p in parts], sort_keys=True, default=str)  # type: ignore[arg-type]
    return hashlib.sha256(f"{FORMAT}:{blob}".encode()).hexdigest()[:16]


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def lookup(home: Home, step: str, key: Key) -> dict[str, Any] | None:
    """The outputs recorded for `key`, if every output file is still exactly as recorded."""
    path = home.step_record(step)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != asdict(key):
        return None
    for name, stamp in record.get("files", {}).items():
        file = Path(name)
        if not file.is_file() or _stamp(file) != stamp:
            return None
    return dict(record["outputs"])


def record(home: Home, step: str, key: Key, outputs: dict[str, Any], files: list[Path]) -> None:
    body = {"key": asdict(key), "outputs": outputs, "files": {str(f): _stamp(f) for f in files}}
    path = home.step_record(step)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(body, indent=2, default=str))
