"""How long the `fluxora` command makes a user wait: `fluxora --help` and `fluxora status`.

Each command runs as a new process (what a user types), `--runs` times, on one home prepared
once with the test suite's tiny data (tests/conftest.py `TINY_OVERRIDES`; the steps run as plain
calls, no Prefect): ingest, validate, features (Feast apply + materialize), train (a champion in
the MLflow registry), monitor (drift and accuracy reports). Prints min / median / max wall time
per command against the goals; the median is the figure to quote (this machine is shared).

    .venv/bin/python benchmarks/cli.py [--runs 7] [--home DIR]
Goals (issue 16): `fluxora --help` <= 0.5 s, `fluxora status` <= 2 s on a home with a champion.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLUXORA = Path(sys.executable).with_name("fluxora")
GOALS = {"fluxora --help": 0.5, "fluxora status": 2.0}


def tiny_overrides() -> list[str]:
    spec = importlib.util.spec_from_file_location("fluxora_test_conftest", ROOT / "tests" / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.TINY_OVERRIDES)


def prepare_home(root: Path) -> None:
    """Run the pipeline's steps once on tiny data (in a child process, so this one stays light)."""
    code = (
        "import sys; from pathlib import Path; from fluxora import steps; from fluxora.config import compose;"
        "from fluxora.paths import Home; from fluxora.runtime import prepare;"
        "cfg = compose(sys.argv[2:]); home = prepare(Home(Path(sys.argv[1])), cfg);"
        "[s(cfg, home) for s in (steps.ingest, steps.validate, steps.features, steps.train, steps.monitor)]"
    )
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, str(root), *tiny_overrides()],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"home prepared in {time.perf_counter() - started:.0f} s: {root}")


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="runs per command (default 7)")
    parser.add_argument("--home", type=Path, help="a home prepared earlier (default: prepare a new one)")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="fluxora-bench-cli-")) / "home"
    if args.home is None:
        prepare_home(home)
    env = os.environ | {"FLUXORA_HOME": str(home)}
    commands = {"fluxora --help": [str(FLUXORA), "--help"], "fluxora status": [str(FLUXORA), "status"]}
    timed(commands["fluxora status"], env)  # warm the OS file cache once; not counted
    print(f"{args.runs} runs each, new process per run; load average {os.getloadavg()[0]:.1f}")
    print(f"{'command':<16} {'min':>7} {'median':>7} {'max':>7}   goal")
    for label, argv in commands.items():
        runs = [timed(argv, env) for _ in range(args.runs)]
        median, goal = statistics.median(runs), GOALS[label]
        verdict = "ok" if median <= goal else "MISSED"
        print(
            f"{label:<16} {min(runs):>6.2f}s {median:>6.2f}s {max(runs):>6.2f}s   <= {goal:.1f} s (median): {verdict}"
        )


if __name__ == "__main__":
    main()
