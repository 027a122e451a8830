"""Serving throughput and latency: Fluxora vs `mlflow models serve` vs a bare FastAPI constant.

All three run on 127.0.0.1 with one worker each, for the same registered champion, forecasting
one series at horizon 24. Load comes from a separate process (a small asyncio HTTP/1.1
keep-alive client), in bounded phases:

  1. saturation, `--rounds` times: a closed loop of `--concurrency` connections against each
     server in turn, at most `--requests` requests or `--max-seconds` seconds per phase.
     Interleaving the servers round by round and taking medians keeps a drifting background
     load (a shared machine) from favouring whichever server ran first;
  2. Fluxora at half its median saturation throughput, open loop (paced), for p50/p99 under load.

Fluxora runs as `fluxora serve` does: structured access log on (to /dev/null here), rate limiter
on (with a limit the benchmark cannot reach), forecast log written. It reads the series' state
from the Feast online store per request; repeated requests for an unchanged state are answered
from its forecast cache (see src/fluxora/api/forecast_cache.py). `mlflow models serve` is given
the same state in the request body (it has no feature store).

Prints throughput, p50/p99, the servers' CPU time per request (user + system of the server
process and its children: unlike throughput it hardly moves with other load on the machine)
and the ratios. On a 2-core machine the load generator shares the cores with the servers.

    .venv/bin/python benchmarks/serving.py [--home DIR | --model neural] [--rounds R] [--requests N] [--concurrency C]
    .venv/bin/python benchmarks/serving.py --compare neural   # + a tiny neural champion, same rounds

`--compare MODEL` trains a second tiny champion of another family and serves it the same way,
in the same interleaved rounds, plus both families with the forecast cache off (every request
runs the model): it prints the second family's throughput and CPU per request as ratios of the
first's (issue 18's goal: a neural champion within 10 % of XGBoost's figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # loopback only
SERIES = "series_000"
HORIZON = 24
TINY = [
    "data.n_series=2",
    "data.days=45",
    "backtest.windows=4",
    "train.min_train_days=14",
    "train.origin_stride_hours=6",
    "model.n_estimators=40",
    "model.quantile_estimators=30",
    "model.learning_rate=0.15",
]

# --- load generator (runs in its own process: `serving.py --load SPEC`) --------------------------


async def _one_connection(
    port: int, request: bytes, deadline: float, budget: list[int], latencies: list[float], errors: list[int], pace: Any
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            if pace is not None:
                await pace()
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    body = spec.get("body", "").encode()
    headers = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
    request = (
        f"{spec['method']} {spec['path']} HTTP/1.1\r\nHost: {HOST}\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    port, conc = spec["port"], spec["concurrency"]
    # warm-up, not measured
    await asyncio.gather(
        *[_one_connection(port, request, time.perf_counter() + 30, [20], [], [], None) for _ in range(2)]
    )
    latencies: list[float] = []
    errors: list[int] = []
    budget = [spec["requests"]]
    pace = None
    if spec.get("rate"):
        interval = 1.0 / spec["rate"]
        next_slot = [time.perf_counter()]

        async def pace_fn() -> None:
            slot = next_slot[0]
            next_slot[0] = slot + interval
            delay = slot - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

        pace = pace_fn
    started = time.perf_counter()
    deadline = started + spec["max_seconds"]
    await asyncio.gather(
        *[_one_connection(port, request, deadline, budget, latencies, errors, pace) for _ in range(conc)]
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "warmup": 2 * 20,
        "requests": len(latencies),
        "errors": len(errors),
        "error_codes": sorted(set(errors))[:5],
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def _run_load(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--load", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=spec["max_seconds"] + 120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- servers -----------------------------------------------------------------------------------

FLUXORA_SERVER = """
import logging, sys, uvicorn
from fluxora.api.app import create_app
from fluxora.api.settings import ServiceSettings
s = ServiceSettings(home=sys.argv[1], tracking_uri=sys.argv[2], poll_interval_s=0,
                    rate_limit_per_minute=10**9, rate_limit_burst=10**9,  # checked on every request, never hit
                    forecast_cache_entries=int(sys.argv[4]) if len(sys.argv) > 4 else 4096)
access = logging.getLogger("fluxora.api.access")  # as `fluxora serve`: one JSON line per request on stdout
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("%(message)s"))
access.addHandler(handler)
access.setLevel(logging.INFO)
access.propagate = False
uvicorn.run(create_app(s), host="127.0.0.1", port=int(sys.argv[3]), log_level="warning", access_log=False)
"""

BARE_SERVER = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/constant")
def constant() -> dict:
    return {"series_id": "series_000", "value": 1.0}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {seconds} s")


def _prepare_home(home: Path | None, model: str = "xgboost") -> Path:
    from fluxora.config import compose
    from fluxora.paths import Home
    from fluxora.runtime import prepare

    if home is not None:
        return home
    root = Path(tempfile.mkdtemp(prefix="fluxora-bench-"))
    h = prepare(Home(root))
    from fluxora import steps

    cfg = compose([*TINY, f"model={model}"])
    print(f"training a tiny {model} champion in {root} ...", flush=True)
    for step in (steps.ingest, steps.validate, steps.features, steps.train):
        step(cfg, h)
    from fluxora import registry

    name = cfg.train.registered_model_name
    if registry.champion(h, name) is None:  # the benchmark measures serving, not the promotion gate
        versions = registry.configure(h).search_model_versions(f"name='{name}'")
        latest = max(int(v.version) for v in versions)
        registry.promote(h, name, str(latest), "benchmark: serve the tiny model the gate refused")
    return root


def _mlflow_body(home: Path) -> str:
    """The series' latest origin state (what Fluxora reads from Feast), as MLflow's JSON input."""
    import pyarrow.parquet as pq

    from fluxora.features import store as fs
    from fluxora.features.names import EVENT_TIMESTAMP, LOAD_HISTORY, TEMP_HISTORY
    from fluxora.paths import Home

    table = pq.read_table(fs.offline_path(Home(home))).to_pandas()
    row = table[table["series_id"] == SERIES].sort_values(EVENT_TIMESTAMP).iloc[-1]
    record = {
        "origin": row[EVENT_TIMESTAMP].isoformat(),
        LOAD_HISTORY: [float(v) for v in row[LOAD_HISTORY]],
        TEMP_HISTORY: [float(v) for v in row[TEMP_HISTORY]],
    }
    return json.dumps({"dataframe_records": [record], "params": {"horizon": HORIZON}})


def _api_key(home: Path) -> str:
    from fluxora import servicedb as db
    from fluxora.servicedb import accounts

    engine = db.make_engine(f"sqlite:///{home / 'serving' / 'fluxora.db'}")
    db.migrate(engine)
    with db.sessions(engine)() as session:
        _, key = accounts.create_key(session, "benchmark")
    engine.dispose()
    return key


def _cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """User + system CPU time of a server process and its children so far."""
    import psutil

    root = psutil.Process(proc.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def _measured(proc: subprocess.Popen[bytes], spec: dict[str, Any]) -> dict[str, Any]:
    before = _cpu_seconds(proc)
    result = _run_load(spec)
    served = result["requests"] + result["warmup"]
    result["cpu_ms"] = (_cpu_seconds(proc) - before) * 1000 / served if served else float("nan")
    return result


def _median(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over the rounds; requests and errors are totals."""
    out = {k: statistics.median(r[k] for r in rounds) for k in ("rps", "p50_ms", "p99_ms", "cpu_ms")}
    out["requests"] = sum(r["requests"] for r in rounds)
    out["errors"] = sum(r["errors"] for r in rounds)
    out["error_codes"] = sorted({c for r in rounds for c in r["error_codes"]})
    return out


def _start(name: str, argv: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    out = (logs / f"{name}.log").open("wb")  # access logs and server chatter, out of the report
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL if name.startswith("fluxora") else out, stderr=out)


def _compare(first: str, second: str, results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Print the second family's figures as ratios of the first's; the rows for the error check."""
    pairs = [("forecast cache on", "fluxora", "second"), ("forecast cache off", "first, no cache", "second, no cache")]
    print()
    print(f"{second} champion vs {first} champion (goal: within 10 %), same interleaved rounds:")
    print(f"{'':<22}{first + ' req/s':>16}{second + ' req/s':>16}{'ratio':>8}{'CPU ms/req ratio':>18}")
    for label, a, b in pairs:
        ra, rb = results[a], results[b]
        print(
            f"{label:<22}{ra['rps']:>16.0f}{rb['rps']:>16.0f}{rb['rps'] / ra['rps']:>8.2f}"
            f"{rb['cpu_ms'] / ra['cpu_ms']:>18.2f}"
        )
    return [(f"{second} {a}", results[b]) for _, a, b in pairs] + [(f"{first} no cache", results["first, no cache"])]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--load", help=argparse.SUPPRESS)
    p.add_argument("--home", type=Path, help="a FLUXORA_HOME with a champion (default: train a tiny one)")
    p.add_argument("--model", default="xgboost", help="the tiny champion's model family (without --home)")
    p.add_argument("--rounds", type=int, default=3, help="saturation rounds per server, interleaved")
    p.add_argument("--requests", type=int, default=3000, help="max requests per saturation phase")
    p.add_argument("--mlflow-requests", type=int, default=600, help="max requests against mlflow models serve")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=20.0, help="max seconds per phase")
    p.add_argument("--compare", metavar="MODEL", help="also serve a tiny champion of this family (e.g. neural)")
    args = p.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(_load(json.loads(args.load)))))
        return 0

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    home = _prepare_home(args.home, args.model)
    other = _prepare_home(None, args.compare) if args.compare else None
    tracking = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    key = _api_key(home)
    mlflow_body = _mlflow_body(home)
    ports = {"fluxora": _free_port(), "mlflow": _free_port(), "bare": _free_port()}
    # --compare: (home, forecast cache entries) of each extra Fluxora server
    extra: dict[str, tuple[Path, int]] = {}
    if other is not None:
        extra = {"first, no cache": (home, 0), "second": (other, 4096), "second, no cache": (other, 0)}
        ports |= {name: _free_port() for name in extra}
    bindir = str(Path(sys.executable).parent)  # `mlflow models serve` execs `uvicorn` from PATH
    env = os.environ | {
        "MLFLOW_TRACKING_URI": tracking,
        "FLUXORA_HOME": str(home),
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }
    logs = Path(tempfile.mkdtemp(prefix="fluxora-bench-logs-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["fluxora"] = _start(
            "fluxora", [sys.executable, "-c", FLUXORA_SERVER, str(home), tracking, str(ports["fluxora"])], env, logs
        )
        procs["bare"] = _start("bare", [sys.executable, "-c", BARE_SERVER, str(ports["bare"])], env, logs)
        keys = {}
        for i, (name, (h, entries)) in enumerate(extra.items()):
            track = f"sqlite:///{h / 'mlflow' / 'mlflow.db'}"
            argv = [sys.executable, "-c", FLUXORA_SERVER, str(h), track, str(ports[name]), str(entries)]
            procs[name] = _start(
                f"fluxora-{i + 2}", argv, env | {"MLFLOW_TRACKING_URI": track, "FLUXORA_HOME": str(h)}, logs
            )
            keys[name] = key if h == home else _api_key(h)
        mlflow_cli = Path(sys.executable).parent / "mlflow"
        procs["mlflow"] = _start(
            "mlflow",
            [
                str(mlflow_cli), "models", "serve", "-m", "models:/fluxora-load-forecaster@champion",
                "-h", HOST, "-p", str(ports["mlflow"]), "-w", "1", "--env-manager", "local",
            ],
            env,
            logs,
        )  # fmt: skip
        try:
            _wait(f"http://{HOST}:{ports['fluxora']}/health/ready", procs["fluxora"])
            _wait(f"http://{HOST}:{ports['bare']}/constant", procs["bare"])
            _wait(f"http://{HOST}:{ports['mlflow']}/ping", procs["mlflow"])
            for name in extra:
                _wait(f"http://{HOST}:{ports[name]}/health/ready", procs[name])
        except RuntimeError:
            print(f"a server did not start; its output is in {logs}", file=sys.stderr)
            raise

        common = {"concurrency": args.concurrency, "max_seconds": args.max_seconds}
        specs = {
            "fluxora": common
            | {
                "port": ports["fluxora"],
                "method": "GET",
                "path": f"/v1/forecast?series_id={SERIES}&horizon={HORIZON}",
                "headers": {"X-API-Key": key},
                "requests": args.requests,
            },
            "mlflow": common
            | {
                "port": ports["mlflow"],
                "method": "POST",
                "path": "/invocations",
                "headers": {"Content-Type": "application/json"},
                "body": mlflow_body,
                "requests": args.mlflow_requests,
            },
            "bare": common | {"port": ports["bare"], "method": "GET", "path": "/constant", "requests": args.requests},
        }
        for name in extra:
            specs[name] = specs["fluxora"] | {"port": ports[name], "headers": {"X-API-Key": keys[name]}}
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in specs}
        for _ in range(args.rounds):
            for name, spec in specs.items():
                rounds[name].append(_measured(procs[name], spec))
        results = {name: _median(r) for name, r in rounds.items()}
        half = results["fluxora"]["rps"] / 2
        paced = _measured(
            procs["fluxora"],
            specs["fluxora"]
            | {"rate": half, "requests": int(min(args.requests, half * 10)), "max_seconds": min(args.max_seconds, 10)},
        )
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    print()
    print(f"one series, horizon {HORIZON}, {args.concurrency} connections, loopback, 1 worker each;")
    print(f"saturation figures are medians of {args.rounds} interleaved rounds")
    print(f"{'server':<28}{'requests':>9}{'errors':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}")
    rows = [
        ("fluxora GET /v1/forecast", results["fluxora"]),
        ("mlflow models serve", results["mlflow"]),
        ("bare FastAPI constant", results["bare"]),
        (f"fluxora @ {half:.0f} req/s (50%)", paced),
    ]
    for label, r in rows:
        print(
            f"{label:<28}{r['requests']:>9}{r['errors']:>8}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['cpu_ms']:>12.3f}"
        )
    f, m, b = (results[k]["rps"] for k in ("fluxora", "mlflow", "bare"))
    fc, mc, bc = (results[k]["cpu_ms"] for k in ("fluxora", "mlflow", "bare"))
    print()
    print(f"fluxora / mlflow models serve throughput: {f / m:5.1f}x   (goal >= 10x)")
    print(f"fluxora / bare FastAPI throughput:        {f / b:5.2f}    (goal >= 0.40)")
    print(f"fluxora p99 at 50% of saturation:         {paced['p99_ms']:.1f} ms (goal <= 20 ms)")
    print("by server CPU time per request (what each would reach on a core of its own):")
    print(f"  mlflow / fluxora CPU per request:       {mc / fc:5.1f}x")
    print(f"  bare / fluxora CPU per request:         {bc / fc:5.2f}")
    if extra:
        rows += _compare(args.model, str(args.compare), results)
    if any(r["errors"] for _, r in rows):
        print("errors:", {label: r["error_codes"] for label, r in rows if r["errors"]})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
