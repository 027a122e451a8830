"""Scale: N series x D days hourly through ingest -> validate -> features -> Feast apply/materialize ->
XGBoost train (backtest + final fit) -> monitoring, with per-series work on a local Dask cluster.

It runs `fluxora run infra=dask`'s own Prefect flow, so the train step fans out through Prefect's
DaskTaskRunner on a local cluster (a `LocalCluster` of `--workers` processes). Prints each stage's
wall time and peak RSS of this process plus all its children (Dask workers and nannies, Prefect's
temporary server), sampled every 0.2 s.

    .venv/bin/python benchmarks/scale.py                          # 1,000 series x 1 year (heavy)
    .venv/bin/python benchmarks/scale.py --series 50 --days 120   # smoke size, about a minute
    .venv/bin/python benchmarks/scale.py -- model.n_estimators=200   # extra Hydra overrides

Goal (issue 6): 1,000 series x 1 year under 15 minutes and 8 GB on this 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

GIB = 1024**3


class PeakRss:
    """Peak resident memory of this process and every descendant, sampled in a thread."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self.overall = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a child that just ended
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.now()
            self.peak, self.overall = max(self.peak, rss), max(self.overall, rss)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        self.peak = self.now()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workers", type=int, default=2, help="local Dask cluster: worker processes")
    parser.add_argument("--threads", type=int, default=1, help="local Dask cluster: threads per worker")
    parser.add_argument("--max-origins", type=int, default=50_000, help="training origins sampled per fit")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="fluxora-bench-scale-"))
    os.environ["FLUXORA_HOME"] = str(scratch / "home")
    os.environ.setdefault("PREFECT_HOME", str(scratch / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    overrides = [
        f"data.n_series={args.series}",
        f"data.days={args.days}",
        "model=xgboost",
        "infra=dask",
        f"infra.dask_n_workers={args.workers}",
        f"infra.dask_threads_per_worker={args.threads}",
        # Every hour is an origin candidate; a uniform sample keeps all hours and seasons in the set.
        "train.origin_stride_hours=1",
        f"train.max_origins={args.max_origins}",
        *args.overrides,
    ]
    from fluxora.config import compose

    compose(overrides)  # a bad override fails here, before anything starts
    print(f"load average at start: {load()}", flush=True)
    print(f"{args.series} series x {args.days} days hourly; overrides: {' '.join(overrides)}", flush=True)

    memory = PeakRss()
    memory.start()
    rows: list[tuple[str, float, int]] = []
    started_all = time.perf_counter()
    try:
        _run(overrides, memory, rows)
    finally:
        memory.stop()
    wall = time.perf_counter() - started_all

    print()
    print(f"{'stage':<34}{'wall s':>9}{'peak RSS GB':>13}")
    for name, seconds, peak in rows:
        print(f"{name:<34}{seconds:>9.1f}{f'{peak / GIB:.2f}' if peak else '-':>13}")
    print(f"{'total':<34}{wall:>9.1f}{memory.overall / GIB:>13.2f}")
    print(f"goal: < 900 s and < 8 GB   ->  {'met' if wall < 900 and memory.overall < 8 * GIB else 'NOT met'}")
    print(f"load average at end: {load()}")
    print(f"(scratch FLUXORA_HOME: {scratch / 'home'}; delete it when done)")
    return 0


def _run(overrides: list[str], memory: PeakRss, rows: list[tuple[str, float, int]]) -> None:
    """Run `fluxora run`'s flow (`flows.pipeline.pipeline_flow`) with each step timed in this process.

    The flow and its tasks are the real ones (a flow defined here would be pickled with this
    script's state when Dask ships a task); the steps are wrapped in place, which is all the timing
    needs since step tasks run in this process and only per-series units go to the workers."""
    from flows.pipeline import pipeline_flow
    from fluxora import steps
    from fluxora.features import store as fs
    from fluxora.paths import Home
    from fluxora.runtime import prepare

    prepare(Home.from_env())
    inner: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                inner[name] = inner.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    def stage(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **kw: Any) -> Any:
            memory.reset()
            started = time.perf_counter()
            out = fn(*a, **kw)
            rows.append((name, time.perf_counter() - started, memory.peak))
            print(f"  {name}: {rows[-1][1]:.1f} s, peak RSS {memory.peak / GIB:.2f} GB", flush=True)
            return out

        return wrapper

    # Feast's apply and materialize inside the features step, measured apart.
    fs.apply = timed("apply", fs.apply)  # type: ignore[method-assign]
    fs.materialize = timed("materialize", fs.materialize)  # type: ignore[method-assign]
    for step, label in STAGES.items():
        setattr(steps, step, stage(label, getattr(steps, step)))

    started = time.perf_counter()
    state = pipeline_flow(overrides=overrides, return_state=True)
    if not state.is_completed():
        raise SystemExit(f"flow failed: {state}")
    results = state.result()
    stepped = sum(r[1] for r in rows)
    rows.insert(0, ("flow start-up and task overhead", time.perf_counter() - started - stepped, 0))
    at = next(i for i, r in enumerate(rows) if r[0] == STAGES["features"])
    feast = inner.get("apply", 0.0) + inner.get("materialize", 0.0)
    rows.insert(at + 1, ("  of which Feast apply + materialize", feast, rows[at][2]))
    print(f"    Feast apply {inner.get('apply', 0.0):.1f} s, materialize {inner.get('materialize', 0.0):.1f} s")
    print(f"    features written: {results.features.tables}")
    print(f"    model: {results.train.model}")
    print(f"    monitor: drift {results.monitor.status} share {results.monitor.drift_share}")


STAGES = {
    "ingest": "ingest (synthetic)",
    "validate": "validate (gate, whole table)",
    "features": "features + Feast apply/materialize",
    "train": "train (backtest on Dask + final fit)",
    "monitor": "monitor (drift, per series)",
}


if __name__ == "__main__":
    raise SystemExit(main())
