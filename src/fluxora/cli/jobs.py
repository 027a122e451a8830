"""Pipeline work from the command line: `run` (the whole pipeline as a Prefect flow), `backtest`,
`stage` (one step for DVC), and the scheduler: `deploy` and `trigger`."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import socket
import subprocess
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

    args.overrides = with_given_path_allowed(args.overrides)
    cfg, home = configured(args.overrides)
    started = time.perf_counter()
    print(f"fluxora run: FLUXORA_HOME={home.root}", flush=True)
    server = start_temporary_prefect_server()  # it boots while the flows import
    from flows.pipeline import pipeline_flow

    if server is not None:
        server.wait_ready()
    state = pipeline_flow(overrides=list(args.overrides), config=cfg, return_state=True)
    if not state.is_completed():
        exc = _flow_exception(state)
        if isinstance(exc, FluxoraError):
            raise exc
        print(f"error: pipeline failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(run_summary(state.result(), home, time.perf_counter() - started, cfg.serve.max_feature_age_s))
    return 0


def with_given_path_allowed(overrides: list[str]) -> list[str]:
    """`fluxora run data=csv data.path=/srv/meters/load.csv` on one's own machine: a `data.path`
    typed on this command line outside `data.roots` gets its folder added to `data.roots` for this
    run (one line says so), unless the command line sets `data.roots` itself. `data.roots` guards
    the paths that arrive from elsewhere (deployment parameters, `fluxora trigger`, `dvc repro`'s
    params.yaml), which keep the check."""
    from pathlib import Path

    from fluxora.config import compose
    from fluxora.data.safepaths import confine, resolve_roots
    from fluxora.errors import FluxoraError
    from fluxora.paths import project_root

    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
    if "data.path" not in keys or "data.roots" in keys:
        return list(overrides)
    data = compose(list(overrides)).data
    if not data.path:
        return list(overrides)
    base = project_root()
    fixed = data.path.split("*")[0].split("?")[0].split("[")[0]  # a glob: its fixed leading part
    target = Path(fixed).expanduser()
    target = (target if target.is_absolute() else base / target).resolve()
    folder = target if target.is_dir() else target.parent
    try:
        confine(target if fixed == data.path else folder, data.roots, base)
        return list(overrides)  # inside the roots already
    except FluxoraError:
        pass
    roots = [str(r) for r in resolve_roots(data.roots, base)] + [str(folder)]
    quoted = ",".join("'" + r.replace("\\", "\\\\").replace("'", "\\'") + "'" for r in roots)
    progress(f"data.path is outside data.roots: {folder} is allowed for this run (set data.roots to choose)")
    return [*overrides, f"data.roots=[{quoted}]"]


def _flow_exception(state: Any) -> BaseException:
    try:
        state.result()
    except BaseException as exc:  # the flow's own exception, re-raised by Prefect
        return exc
    return RuntimeError(f"flow ended in state {state.type}")


def backtest(args: argparse.Namespace) -> int:
    from flows.fanout import fan_out
    from fluxora import steps

    cfg, home = configured(with_given_path_allowed(args.overrides))
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


# Run in the server's own interpreter before uvicorn: PR_SET_PDEATHSIG (1) has the kernel send
# SIGTERM when the parent dies, SIGKILL included; a parent already gone by then means exit at once.
_TETHER = """\
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM) != 0 or os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


class TemporaryPrefectServer:
    """Prefect's temporary API server (the one a flow run starts when no PREFECT_API_URL is set),
    started by us as a child that the kernel stops when this process dies, however it dies.

    Prefect's own (`SubprocessASGIServer`) is a plain child: a SIGKILL of the parent orphans it.
    The socket is bound here and handed over (`uvicorn --fd`), so there is no port race."""

    def __init__(self) -> None:
        # Closed here once the child has it: a server that dies must refuse connections, not queue them.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.api_url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
            fd = sock.fileno()
            uvicorn = ["-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--fd", str(fd)]
            self.process = subprocess.Popen(
                [sys.executable, "-c", _TETHER, str(os.getpid()), *uvicorn, "--log-level", "error", "--lifespan", "on"],
                pass_fds=(fd,),
                # What Prefect sets for its temporary server: no UI, no background services.
                env=os.environ
                | {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"},
            )

    def wait_ready(self) -> None:
        """Until the API answers; a clear error if the server exits or does not answer in time."""
        import httpx

        timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FluxoraError(f"the temporary Prefect server exited with code {self.process.returncode}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise FluxoraError(
            f"the temporary Prefect server did not answer within {timeout:.0f} s "
            "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_temporary_prefect_server() -> TemporaryPrefectServer | None:
    """A tethered temporary server with PREFECT_API_URL pointing at it, when this process would
    otherwise start Prefect's own: no PREFECT_API_URL, ephemeral mode allowed, Linux (prctl), and
    Prefect not imported yet (it reads its settings once, at import; a process that imported it
    already, such as a test under Prefect's harness, keeps what those settings say).

    The server is stopped at exit after Prefect's own exit handlers have sent their last logs
    and events to it (handlers run in reverse order of registration)."""
    switches = ("PREFECT_SERVER_EPHEMERAL_ENABLED", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE")
    allowed = all(os.environ.get(name, "true").lower() not in ("0", "false", "no") for name in switches)
    if (
        os.environ.get("PREFECT_API_URL")
        or not allowed
        or not sys.platform.startswith("linux")
        or "prefect" in sys.modules
    ):
        return None
    server = TemporaryPrefectServer()
    atexit.register(server.stop)
    os.environ["PREFECT_API_URL"] = server.api_url  # also seen by worker processes this run starts
    return server


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
