"""Serving many series: the online read for 1,000 and 10,000 series, and POST /v1/forecast for
100 and 1,000 series in one request (issue 15, item 4).

Builds a temporary home: a tiny champion trained as `benchmarks/serving.py` trains it (2 series,
45 days; the model is global across series, so a sample trains it), then ingest, validate and
features for `--series` synthetic series of `--days` days, which materializes each series'
latest state to the SQLite online store. Then, side by side in one run:

  (a) `OnlineFeatures.states` in this process for 1,000 and `--series` series: cold (a new
      reader, its first read: Feast's SQLite rows decoded into arrays) and warm (the reader's
      kept states while the store is unchanged), medians of `--repeats` reads;
  (b) POST /v1/forecast through a real `uvicorn` server (one worker, as `fluxora serve`, access
      log on), with httpx, for 100 and 1,000 series: "cached" (the same states asked again, the
      case between two materializations: forecasts come from the forecast cache) and "computed"
      (a second server with `forecast_cache_entries=0`: every request reads, runs the model on
      all series and renders). p50 and p95 of `--requests` sequential requests each.

Prints the ratio of each p50 to the goal (issue 15): POST /v1/forecast for 1,000 series <= 250 ms p50.

    .venv/bin/python benchmarks/many_series.py [--series 10000] [--days 15] [--requests 30] [--home DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serving import TINY, _api_key, _free_port, _wait  # the script's own folder is on sys.path

HOST = "127.0.0.1"
GOAL_MS = 250.0
TRAIN = TINY  # as benchmarks/serving.py trains it: a tiny champion

SERVER = """
import logging, sys, uvicorn
from fluxora.api.app import create_app
from fluxora.api.settings import ServiceSettings
s = ServiceSettings(home=sys.argv[1], tracking_uri=sys.argv[2], poll_interval_s=0,
                    rate_limit_per_minute=10**9, rate_limit_burst=10**9,
                    max_series_per_request=int(sys.argv[4]), forecast_cache_entries=int(sys.argv[5]))
access = logging.getLogger("fluxora.api.access")  # as `fluxora serve`: one JSON line per request
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("%(message)s"))
access.addHandler(handler)
access.setLevel(logging.INFO)
access.propagate = False
uvicorn.run(create_app(s), host="127.0.0.1", port=int(sys.argv[3]), log_level="warning", access_log=False)
"""


WIDTH = [3]  # digits of the synthetic source's series names (as `fluxora.data.synthetic` numbers them)


def series_ids(n: int) -> list[str]:
    """The names of the home's first `n` series."""
    return [f"series_{i:0{WIDTH[0]}d}" for i in range(n)]


def build_home(root: Path, n_series: int, days: int) -> Path:
    """A champion trained on a sample, then `n_series` series' latest states materialized."""
    from fluxora import registry, steps
    from fluxora.config import compose
    from fluxora.paths import Home
    from fluxora.runtime import prepare

    h = prepare(Home(root))
    t0 = time.perf_counter()
    cfg = compose(TRAIN)
    for step in (steps.ingest, steps.validate, steps.features, steps.train):
        step(cfg, h)
    name = cfg.train.registered_model_name
    if registry.champion(h, name) is None:  # the benchmark measures serving, not the promotion gate
        versions = registry.configure(h).search_model_versions(f"name='{name}'")
        latest = max(int(v.version) for v in versions)
        registry.promote(h, name, str(latest), "benchmark: serve the tiny model the gate refused")
    print(f"  champion trained in {time.perf_counter() - t0:.1f} s", flush=True)
    cfg = compose([f"data.n_series={n_series}", f"data.days={days}"])
    for step in (steps.ingest, steps.validate, steps.features):
        t0 = time.perf_counter()
        step(cfg, h)
        print(f"  {step.__name__} for {n_series} series x {days} days: {time.perf_counter() - t0:.1f} s", flush=True)
    return root


def _contract(home: Path, tracking: str) -> tuple[str, tuple[str, ...]]:
    from fluxora.api import weather
    from fluxora.api.model_store import ModelStore
    from fluxora.api.settings import ServiceSettings

    loaded = ModelStore(ServiceSettings(home=str(home), tracking_uri=tracking, poll_interval_s=0)).load_champion()
    c = loaded.forecaster.contract
    return c.feature_service, weather.online_features(c)


def online_reads(home: Path, tracking: str, sizes: list[int], repeats: int) -> list[tuple[str, list[float]]]:
    """(label, milliseconds per read) for a cold and a warm `OnlineFeatures.states` of each size."""
    from fluxora.api.online import OnlineFeatures
    from fluxora.paths import Home

    service, features = _contract(home, tracking)
    rows: list[tuple[str, list[float]]] = []
    for n in sizes:
        ids = series_ids(n)
        cold: list[float] = []
        warm: list[float] = []
        for _ in range(repeats):
            reader = OnlineFeatures(Home(home))
            reader.warm(service, features)  # the service opens the store at start-up, not per request
            gc.collect()
            t0 = time.perf_counter()
            states = reader.states(ids, service, features)
            cold.append((time.perf_counter() - t0) * 1000)
            if states.missing or len(states.series_ids) != n:
                raise SystemExit(f"online store lacks {len(states.missing)} of {n} series")
            before = reader.reads
            for _ in range(3):
                t0 = time.perf_counter()
                reader.states(ids, service, features)
                warm.append((time.perf_counter() - t0) * 1000)
            if reader.reads != before:  # the store changed, or states were not kept
                print(f"  note: warm reads of {n} series went to the store ({reader.reads - before} reads)")
        rows += [(f"online read {n:>6} series, cold", cold), (f"online read {n:>6} series, warm", warm)]
    return rows


def posts(port: int, key: str, sizes: list[int], requests: int, horizon: int) -> list[tuple[str, list[float]]]:
    """Milliseconds per POST /v1/forecast (sequential, one keep-alive connection) per size."""
    import httpx

    rows: list[tuple[str, list[float]]] = []
    with httpx.Client(base_url=f"http://{HOST}:{port}", headers={"X-API-Key": key}, timeout=120) as client:
        for n in sizes:
            body = {"series_ids": series_ids(n), "horizon": horizon}
            times: list[float] = []
            for k in range(requests + 2):  # the first two warm the server, not measured
                t0 = time.perf_counter()
                r = client.post("/v1/forecast", json=body)
                elapsed = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    raise SystemExit(f"POST /v1/forecast for {n} series: {r.status_code} {r.text[:300]}")
                if k == 0:
                    got = [f["series_id"] for f in r.json()["forecasts"]]
                    if got != body["series_ids"]:
                        raise SystemExit(f"POST /v1/forecast for {n} series answered other series or order")
                if k >= 2:
                    times.append(elapsed)
            rows.append((f"{n:>5} series", times))
    return rows


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=10_000, help="series materialized (and read in (a))")
    p.add_argument("--days", type=int, default=15, help="days of synthetic history per series")
    p.add_argument("--requests", type=int, default=30, help="measured POSTs per size and server")
    p.add_argument("--repeats", type=int, default=3, help="cold online reads per size (warm: 3 after each)")
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--home", type=Path, help="a home built by an earlier run (printed at the end)")
    p.add_argument("--profile", type=Path, help="also write a cProfile of one cold 1,000-series online read here")
    args = p.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    home = args.home
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="fluxora-bench-many-"))
        print(f"building a home in {home} ...", flush=True)
        build_home(home, args.series, args.days)
    WIDTH[0] = len(str(max(args.series - 1, 999)))
    tracking = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    read_sizes = sorted({min(1000, args.series), args.series})
    post_sizes = sorted({min(100, args.series), min(1000, args.series)})

    reads = online_reads(home, tracking, read_sizes, args.repeats)
    if args.profile:
        _profile(home, tracking, args.profile)

    key = _api_key(home)
    env = os.environ | {"MLFLOW_TRACKING_URI": tracking, "FLUXORA_HOME": str(home)}
    limit = str(max(post_sizes))
    servers = {"cached": "4096", "computed": "0"}  # forecast_cache_entries
    ports = {name: _free_port() for name in servers}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", SERVER, str(home), tracking, str(ports[name]), limit, entries],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for name, entries in servers.items()
    }
    results: dict[str, list[tuple[str, list[float]]]] = {}
    try:
        for name, proc in procs.items():
            _wait(f"http://{HOST}:{ports[name]}/health/live", proc, 240)
            _wait(f"http://{HOST}:{ports[name]}/health/ready", proc, 240)
        for name in servers:
            results[name] = posts(ports[name], key, post_sizes, args.requests, args.horizon)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    print()
    print(f"{args.series} series materialized ({args.days} days each), SQLite online store, 1 uvicorn worker")
    print(f"{'':<38}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}")
    for label, times in reads:
        print(f"{label:<38}{len(times):>5}{statistics.median(times):>10.1f}{_pct(times, 0.95):>10.1f}")
    print(f"POST /v1/forecast, horizon {args.horizon}, httpx, sequential requests:")
    for name, rows in results.items():
        for label, times in rows:
            tag = f"  {name:<9}{label}"
            print(f"{tag:<38}{len(times):>5}{statistics.median(times):>10.1f}{_pct(times, 0.95):>10.1f}")
    print()
    for name, rows in results.items():
        for label, times in rows:
            if label.strip().startswith("1000"):
                p50 = statistics.median(times)
                goal = f"goal: 1,000 series <= {GOAL_MS:.0f} ms p50 ({name})"
                print(f"{goal}: {p50:.0f} ms = {p50 / GOAL_MS:.2f} of the goal")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"(home: {home}; rerun with --home to skip the build; delete it when done)")
    return 0


def _profile(home: Path, tracking: str, out: Path) -> None:
    import cProfile
    import pstats

    from fluxora.api.online import OnlineFeatures
    from fluxora.paths import Home

    service, features = _contract(home, tracking)
    reader = OnlineFeatures(Home(home))
    reader.warm(service, features)
    ids = series_ids(1000)
    prof = cProfile.Profile()
    prof.enable()
    reader.states(ids, service, features)
    prof.disable()
    prof.dump_stats(out)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    sys.exit(main())
