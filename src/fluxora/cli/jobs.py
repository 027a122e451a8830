"""Pipeline work from the command line: `run` (the whole pipeline as a Prefect flow), `backtest`,
`stage` (one step for DVC), and the scheduler: `deploy` and `trigger`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, cast

from fluxora.cli import EXIT_ERROR, configured
from fluxora.errors import FluxoraError

DEFAULT_PREFECT_API = "http://127.0.0.1:4200/api"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from fluxora.cli.render import run_summary

    cfg, home = configured(args.overrides)
    started = time.perf_counter()
    print(f"fluxora run: FLUXORA_HOME={home.root}", flush=True)
    from flows.pipeline import pipeline_flow

    state = pipeline_flow(overrides=list(args.overrides), config=cfg, return_state=True)
    if not state.is_completed():
        exc = _flow_exception(state)
        if isinstance(exc, FluxoraError):
            raise exc
        print(f"error: pipeline failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(run_summary(state.result(), home, time.perf_counter() - started))
    return 0


def _flow_exception(state: Any) -> BaseException:
    try:
        state.result()
    except BaseException as exc:  # the flow's own exception, re-raised by Prefect
        return exc
    return RuntimeError(f"flow ended in state {state.type}")


def backtest(args: argparse.Namespace) -> int:
    from flows.fanout import fan_out
    from fluxora import steps

    cfg, home = configured(args.overrides)
    started = time.perf_counter()
    for step in (steps.ingest, steps.validate):  # the same data path as `fluxora run`
        progress(f"{step.__name__}: {step(cfg, home).outputs()}")
    with fan_out(cfg.infra) as per_series:  # infra=dask: backtest units on Dask, as in `fluxora run`
        result = steps.backtest(cfg, home, args.output, progress=progress, fan_out=per_series)
    print(result.table)
    print(f"leaderboard {result.leaderboard}  (MLflow run {result.run_id}, {time.perf_counter() - started:.0f} s)")
    return 0


def stage(args: argparse.Namespace) -> int:
    """One step with params.yaml, for `dvc repro`; prints the step's result as JSON."""
    from fluxora import steps
    from fluxora.config import from_params
    from fluxora.paths import Home, project_root
    from fluxora.runtime import prepare

    cfg = from_params(args.params or project_root() / "params.yaml")
    home = prepare(Home(args.home.resolve()) if args.home else None, cfg)
    result = steps.STAGES[args.name](cfg, home)
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0


def prefect_server() -> str:
    """The Prefect API that deployments live on; a clear error if nothing answers there."""
    import httpx

    url = os.environ.setdefault("PREFECT_API_URL", DEFAULT_PREFECT_API)
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=5).raise_for_status()
    except httpx.HTTPError:
        raise FluxoraError(
            f"no Prefect server answers at {url}; start one with `make prefect-server` or set PREFECT_API_URL"
        ) from None
    return url


def deploy(args: argparse.Namespace) -> int:
    cfg, _ = configured(args.overrides)
    url = prefect_server()
    from flows.deployments import DEPLOYMENTS, serve

    print(f"fluxora deploy: serving {', '.join(DEPLOYMENTS.values())} on {url} (Ctrl+C stops)", flush=True)
    serve(cfg, list(args.overrides))
    return 0


def trigger(args: argparse.Namespace) -> int:
    configured(args.overrides)  # a bad override fails here, not in a worker later
    prefect_server()
    from prefect import get_client
    from prefect.deployments import run_deployment

    from flows.deployments import DEPLOYMENTS

    name = DEPLOYMENTS[args.flow]
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(name)
        except Exception:
            raise FluxoraError(f"deployment {name!r} not found; start `fluxora deploy` first") from None
    overrides = [*(deployment.parameters or {}).get("overrides", []), *args.overrides]
    run = cast(Any, run_deployment(name, parameters={"overrides": overrides}, timeout=None if args.wait else 0))
    print(f"{name}: flow run {run.name} ({run.id}) {run.state.name if run.state else 'scheduled'}")
    if args.wait and not (run.state and run.state.is_completed()):
        return EXIT_ERROR
    return 0
