"""Helpers for tests that start real servers and CLI processes: free ports, health waits, clean stops."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")  # `make browser` installs it
NO_CHROMIUM = "no chromium on PATH (`make browser` installs Debian's package)"


def rendered_dom(url: str, profile: Path, window_size: str = "") -> str:
    """The DOM of `url` after its scripts ran, from headless Chromium with a fresh profile."""
    assert CHROMIUM, NO_CHROMIUM
    size = [f"--window-size={window_size}"] if window_size else []
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # the tests run as root in CI
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *size,
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    """Until `url` answers 200; fails at once if the process died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what} at {url}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it does not end within 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_prefect_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """`prefect server start` on loopback with `env` (PREFECT_HOME, optionally a database URL)."""
    return subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
