"""Scale: N series x D days hourly through ingest -> validate -> features -> Feast apply/materialize ->
XGBoost train (backtest + final fit) -> monitoring, with per-series work on a local Dask cluster.

It runs `fluxora run infra=dask`'s own Prefect flow, so the train step fans out through Prefect's
DaskTaskRunner on a local cluster (a `LocalCluster` of `--workers` processes) and the final
XGBoost fit trains with xgboost.dask on the same workers (`train.dask_max_origins` origins).
`--series` takes several sizes and runs each in a fresh process and FLUXORA_HOME, one after the
other. Per size it prints each stage's wall time and peak RSS of that process plus all its
children (Dask workers and nannies, Prefect's temporary server; sampled every 0.2 s), the bytes
on disk of the home's parts, the trained model's backtest accuracy (MAE, MASE) and the cost per
series; then a summary with the growth of time against the growth of series.

    .venv/bin/python benchmarks/scale.py                              # 1,000 series x 1 year (heavy)
    .venv/bin/python benchmarks/scale.py --series 100 300 --days 365  # two sizes and their growth
    .venv/bin/python benchmarks/scale.py --series 50 --days 120       # smoke size, about a minute
    .venv/bin/python benchmarks/scale.py -- model.n_estimators=200    # extra Hydra overrides

Goal (issue 15): 10,000 series x 1 year <= 30 minutes and <= 12 GB on this 2-core machine; time
for 10,000 / time for 1,000 <= 10; accuracy at 10,000 no worse than at 1,000.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
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
        self.own = 0  # peak of this process alone (the flow's), since the last reset
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        self.own = max(self.own, total)
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
        self.own = 0
        self.peak = self.now()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


MB = 1e6
RESULT = "scale-result: "  # the line on which a size's process reports its figures to the parent
ACCURACY = ("mae", "mase")  # the trained model's overall backtest figures, the same at every size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, nargs="+", default=[1000], help="one or more sizes, run in turn")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workers", type=int, default=2, help="local Dask cluster: worker processes")
    parser.add_argument("--threads", type=int, default=1, help="local Dask cluster: threads per worker")
    parser.add_argument("--max-origins", type=int, default=50_000, help="training origins sampled per backtest fit")
    parser.add_argument(
        "--dask-max-origins",
        type=int,
        default=50_000,
        help="origins of the final xgboost.dask fit (0: all); 200,000 was 1.0%% lower MAE and 2.7x the time "
        "(benchmarks/dask_fit.py, docs/benchmarks.md)",
    )
    parser.add_argument("--keep", action="store_true", help="keep each size's FLUXORA_HOME")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: one size here
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    if any(n < 1 for n in args.series):
        parser.error("--series: sizes must be positive")
    if args.one:
        return _one(args, args.series[0])

    print(f"load average at start: {load()}", flush=True)
    figures = []
    for n in args.series:  # a fresh process per size: no state, caches or memory carried over
        cmd = [sys.executable, "-u", __file__, "--one", "--series", str(n), *_passed(args)]
        print(f"\n=== {n} series: {' '.join(cmd[1:])}", flush=True)
        found = None
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(RESULT):
                    found = json.loads(line[len(RESULT) :])
                else:
                    print(line, end="", flush=True)
        if proc.returncode or found is None:
            print(f"{n} series: failed (exit {proc.returncode})", flush=True)
            return 1
        figures.append(found)
    summary(figures)
    print(f"load average at end: {load()}")
    return 0


def _passed(args: argparse.Namespace) -> list[str]:
    """The options a size's process is started with (the parent's, minus --series)."""
    out = [
        f"--days={args.days}",
        f"--workers={args.workers}",
        f"--threads={args.threads}",
        f"--max-origins={args.max_origins}",
        f"--dask-max-origins={args.dask_max_origins}",
    ]
    return out + (["--keep"] if args.keep else []) + (["--", *args.overrides] if args.overrides else [])


def _one(args: argparse.Namespace, n: int) -> int:
    """One size in this process: the flow and its stages, disk use, accuracy; figures as one JSON line."""
    scratch = Path(tempfile.mkdtemp(prefix="fluxora-bench-scale-"))
    os.environ["FLUXORA_HOME"] = str(scratch / "home")
    os.environ.setdefault("PREFECT_HOME", str(scratch / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    overrides = [
        f"data.n_series={n}",
        f"data.days={args.days}",
        "model=xgboost",
        "infra=dask",
        f"infra.dask_n_workers={args.workers}",
        f"infra.dask_threads_per_worker={args.threads}",
        # Every hour is an origin candidate; a uniform sample keeps all hours and seasons in the set.
        "train.origin_stride_hours=1",
        f"train.max_origins={args.max_origins}",
        f"train.dask_max_origins={args.dask_max_origins}",
        *args.overrides,
    ]
    from fluxora.config import compose

    compose(overrides)  # a bad override fails here, before anything starts
    print(f"load average at start: {load()}", flush=True)
    print(f"{n} series x {args.days} days hourly; overrides: {' '.join(overrides)}", flush=True)

    memory = PeakRss()
    memory.start()
    rows: list[tuple[str, float, int]] = []
    started_all = time.perf_counter()
    try:
        results = _run(overrides, memory, rows)
    finally:
        memory.stop()
    wall = time.perf_counter() - started_all
    disk = disk_use(scratch / "home")
    accuracy = {k: float(results.train.metrics.get(k, float("nan"))) for k in ACCURACY}

    print()
    print(f"{'stage':<38}{'wall s':>9}{'peak RSS GB':>13}")
    for name, seconds, peak in rows:
        print(f"{name:<38}{seconds:>9.1f}{f'{peak / GIB:.2f}' if peak else '-':>13}")
    print(f"{'total':<38}{wall:>9.1f}{memory.overall / GIB:>13.2f}")
    print("bytes on disk: " + ", ".join(f"{k} {v / MB:.1f} MB" for k, v in disk.items()))
    print("backtest accuracy of the trained model: " + ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items()))
    print(
        f"per series: {wall / n:.3f} s, {memory.overall / MB / n:.2f} MB peak RSS, "
        f"{disk['total'] / MB / n:.2f} MB on disk"
    )
    print(f"load average at end: {load()}", flush=True)
    if args.keep:
        print(f"(FLUXORA_HOME kept: {scratch / 'home'})")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    figures = {"series": n, "wall": wall, "peak": memory.overall, "stages": rows, "disk": disk, "accuracy": accuracy}
    print(RESULT + json.dumps(figures), flush=True)
    return 0


def disk_use(home: Path) -> dict[str, int]:
    """Bytes under the home's parts: data, the origin states (the offline store's table), the rest
    of the feature store (other views, Feast's registry and online store), MLflow, everything else."""
    from fluxora.features.store import offline_path
    from fluxora.paths import Home

    h = Home(home)
    sizes = {"data": _bytes(h.data), "origins": _bytes(offline_path(h))}
    sizes["feature store"] = _bytes(h.features_dir) - sizes["origins"] + _bytes(h.feast_repo)
    sizes["mlflow"] = _bytes(h.mlflow_db.parent)
    total = _bytes(home)
    sizes["other"] = total - sum(sizes.values())
    sizes["total"] = total
    return sizes


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def summary(figures: list[dict[str, Any]]) -> None:
    """Each size's totals and cost per series, then the growth of time, memory and disk against
    the growth of series (from the smallest size), overall and per stage."""
    print()
    head = f"{'series':>8}{'wall s':>10}{'peak GB':>9}{'disk MB':>10}{'s/series':>10}{'MB RSS/series':>15}"
    print(head + f"{'MB disk/series':>16}" + "".join(f"{k:>9}" for k in ACCURACY))
    for f in figures:
        n, disk = f["series"], f["disk"]["total"]
        cells = f"{n:>8}{f['wall']:>10.1f}{f['peak'] / GIB:>9.2f}{disk / MB:>10.1f}{f['wall'] / n:>10.3f}"
        cells += f"{f['peak'] / MB / n:>15.2f}{disk / MB / n:>16.2f}"
        print(cells + "".join(f"{f['accuracy'][k]:>9.4f}" for k in ACCURACY))
    base = min(figures, key=lambda f: f["series"])
    for f in figures:
        if f is base:
            continue
        print(
            f"growth {base['series']} -> {f['series']} series (x{f['series'] / base['series']:.1f}): "
            f"time x{f['wall'] / base['wall']:.2f}, peak RSS x{f['peak'] / base['peak']:.2f}, "
            f"disk x{f['disk']['total'] / base['disk']['total']:.2f}"
        )
        by_stage = {name: s for name, s, _ in f["stages"]}
        grown = [
            f"{n.split(' (')[0].strip()} x{by_stage[n] / s:.2f}"
            for n, s, _ in base["stages"]
            if n in by_stage and s > 0
        ]
        print("  per stage: " + ", ".join(grown))


def _run(overrides: list[str], memory: PeakRss, rows: list[tuple[str, float, int]]) -> Any:
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
    train_step = sys.modules["fluxora.steps.train"]  # the module (`fluxora.steps.train` is the step function)
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
            print(
                f"  {name}: {rows[-1][1]:.1f} s, peak RSS {memory.peak / GIB:.2f} GB "
                f"(the flow's process alone {memory.own / GIB:.2f} GB)",
                flush=True,
            )
            return out

        return wrapper

    # Feast's apply and materialize inside the features step, measured apart.
    fs.apply = timed("apply", fs.apply)  # type: ignore[method-assign]
    fs.materialize = timed("materialize", fs.materialize)  # type: ignore[method-assign]
    # The production model's fit inside the train step (xgboost.dask on the workers), measured apart.
    train_step._fit_final = timed("final fit", train_step._fit_final)  # type: ignore[method-assign]
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
    at = next(i for i, r in enumerate(rows) if r[0] == STAGES["train"])
    rows.insert(at + 1, ("  of which the final fit", inner.get("final fit", 0.0), rows[at][2]))
    print(f"    Feast apply {inner.get('apply', 0.0):.1f} s, materialize {inner.get('materialize', 0.0):.1f} s")
    print(f"    features written: {results.features.tables}")
    print(f"    model: {results.train.model}")
    print(f"    monitor: drift {results.monitor.status} share {results.monitor.drift_share}")
    return results


STAGES = {
    "ingest": "ingest (synthetic)",
    "validate": "validate (gate, whole table)",
    "features": "features + Feast apply/materialize",
    "train": "train (backtest + xgboost.dask fit)",
    "monitor": "monitor (drift, per series)",
}


if __name__ == "__main__":
    raise SystemExit(main())
