"""Prefect's overhead on the main job: the pipeline as plain function calls vs as a Prefect flow.

Both run the same `fluxora.steps` steps on the default data, each in a fresh FLUXORA_HOME,
alternating (plain, flow, plain, flow, ...) so machine noise hits both alike. Heavy imports are
warmed first so neither side pays them. The flow's first run includes starting Prefect's
temporary server, as every `fluxora run` without PREFECT_API_URL does; it is printed on its own.
The headline is the median of the per-pair ratios (flow / the plain run just before it).

    .venv/bin/python benchmarks/prefect_overhead.py [--repeats 3] [override ...]
Goal (issue 6): flow overhead <= 20%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (default data if none)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="fluxora-bench-prefect-"))
    os.environ["PREFECT_HOME"] = str(scratch / "prefect")  # one Prefect home: its DB is migrated once
    from fluxora.paths import Home
    from fluxora.runtime import prepare

    prepare(Home(scratch / "warmup"))
    import evidently  # noqa: F401  warm the heavy imports for both sides
    import feast  # noqa: F401
    import mlflow  # noqa: F401
    import xgboost  # noqa: F401

    from flows.pipeline import pipeline_flow
    from fluxora import steps
    from fluxora.config import compose

    cfg = compose(args.overrides)
    stages = (steps.ingest, steps.validate, steps.features, steps.train, steps.monitor)

    def plain(home: Home) -> None:
        for step in stages:
            step(cfg, home)

    def flow(home: Home) -> None:
        state = pipeline_flow(overrides=list(args.overrides), return_state=True)
        if not state.is_completed():
            raise SystemExit(f"flow failed: {state}")

    times: dict[str, list[float]] = {"plain": [], "flow": []}
    for i in range(args.repeats):
        for name, run in (("plain", plain), ("flow", flow)):
            home = prepare(Home(scratch / f"{name}-{i}"))
            os.environ["FLUXORA_HOME"] = str(home.root)
            started = time.perf_counter()
            run(home)
            times[name].append(time.perf_counter() - started)
            print(f"  run {i + 1} {name:5s} {times[name][-1]:7.1f} s", flush=True)

    plain_median, flow_median = statistics.median(times["plain"]), statistics.median(times["flow"])
    ratios = [f / p for p, f in zip(times["plain"], times["flow"], strict=True)]
    print()
    print(f"plain calls   median {plain_median:7.1f} s  runs {', '.join(f'{t:.1f}' for t in times['plain'])}")
    print(f"prefect flow  median {flow_median:7.1f} s  runs {', '.join(f'{t:.1f}' for t in times['flow'])}")
    print(f"pair ratios flow/plain: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"  first pair (the flow starts Prefect's temporary server): {ratios[0]:.3f}")
    ratio = statistics.median(ratios)
    print(f"ratio flow/plain (median of pairs): {ratio:.3f}  -> overhead {ratio - 1:+.1%}  (goal <= +20%)")


if __name__ == "__main__":
    main()
