"""The standing fault-and-fuzz suite (issue 17): runs every test marked `fault` with the recorder
on, then prints one block with pass/fail per test and the figures they measured (cases run,
5xx answers, tracebacks in bodies, answers outside a key's scope, duplicate versions, forecast-log
rows lost or written twice, outages not recovered from, orphaned servers), each judged against
its goal. Exit code 0 only when every fault test passed and every goal holds.

    make faults                                  # or: .venv/bin/python scripts/fault_suite.py
    make faults ARGS='-m "fault and not integration"'   # the quick part (no Prefect runs)
    make faults ARGS='--record faults.jsonl'     # keep the raw records

Any other arguments go to pytest. PostgreSQL- and Redis-backed tests run when
FLUXORA_TEST_POSTGRES_URL / FLUXORA_TEST_REDIS_URL are set, as in `make test`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _fault_record() -> ModuleType:
    """tests/fault_record.py, the one definition of the records and the summary (no pytest needed)."""
    spec = importlib.util.spec_from_file_location("fault_record", ROOT / "tests" / "fault_record.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", type=Path, help="write the JSON-line records here (default: a temporary file)")
    args, pytest_args = parser.parse_known_args(argv)
    fr = _fault_record()
    with tempfile.TemporaryDirectory(prefix="fluxora-faults-") as tmp:
        record = (args.record or Path(tmp) / "faults.jsonl").resolve()
        record.unlink(missing_ok=True)
        if not any(a == "-m" or a.startswith("-m") for a in pytest_args):
            pytest_args = ["-m", "fault", *pytest_args]
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
        print("$ " + " ".join(command), flush=True)
        env = os.environ | {fr.RECORD_ENV: str(record), fr.SUMMARY_ENV: "0"}
        code = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        summary = fr.summarize(fr.load(record))
    print()
    print(summary.text)
    if code != 0 and summary.ok:  # no test failed or broke a goal, yet pytest did not succeed
        print(f"BROKEN: pytest exited with {code} (collection error, or no test selected)")
    return 0 if code == 0 and summary.ok and summary.tests else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
