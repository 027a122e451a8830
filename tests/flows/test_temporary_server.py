"""SIGKILL of `fluxora run` must take the temporary Prefect server it started with it.

Without PREFECT_API_URL a flow run needs a temporary API server; Prefect's own is a plain child
process that a SIGKILL of the parent orphans. `fluxora run` starts it tethered to itself
(`fluxora.cli.jobs.TemporaryPrefectServer`), so the kernel stops it when the run dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from fault_record import FaultRecorder
from process_support import BIN

from conftest import TINY_OVERRIDES

pytestmark = [pytest.mark.integration, pytest.mark.fault]

SERVER_APP = "prefect.server.api.server:create_app"
# The server gets SIGTERM when the run dies; uvicorn's shutdown takes about a second.
GONE_WITHIN_S = 30


def _listening_server(run: subprocess.Popen[bytes], timeout: float) -> psutil.Process:
    """The run's Prefect server process once it listens (uvicorn listens after start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            raise AssertionError(f"`fluxora run` exited with {run.returncode} before its server was up")
        for child in psutil.Process(run.pid).children(recursive=True):
            try:
                if SERVER_APP in " ".join(child.cmdline()) and any(
                    c.status == psutil.CONN_LISTEN for c in child.net_connections(kind="inet")
                ):
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no listening Prefect server under `fluxora run` within {timeout:.0f} s")


def test_sigkill_of_run_stops_its_temporary_prefect_server(tmp_path: Path, fault_record: FaultRecorder) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["FLUXORA_HOME"] = str(tmp_path / "home")  # PREFECT_HOME stays the session's (migrated once)
    run = subprocess.Popen(
        [str(BIN / "fluxora"), "run", *TINY_OVERRIDES],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server: psutil.Process | None = None
    try:
        server = _listening_server(run, timeout=240)
        run.send_signal(signal.SIGKILL)
        run.wait()
        _, alive = psutil.wait_procs([server], timeout=GONE_WITHIN_S)
        fault_record(orphaned_servers=len(alive))
        assert not alive, f"the temporary Prefect server (pid {server.pid}) outlived the SIGKILLed run"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if server is not None and server.is_running():
            server.kill()
