"""Per-series work on Prefect's Dask task runner (`infra.task_runner=dask`), or serially.

`fan_out(infra)` opens what the library's `FanOut.map` runs on, for the length of one step:
- `serial` (default): `fluxora.fanout.SERIAL`, in-process; no Dask is imported or started;
- `dask`: a `DaskTaskRunner` connected to `infra.dask_address` (an existing cluster), or, without
  one, a `LocalCluster` of `dask_n_workers` processes × `dask_threads_per_worker` threads that
  lives as long as the step. Each work unit is a Prefect task run (`per-series`) on a worker.

Units are submitted in a bounded window (twice the cluster's threads), so the driver never holds every unit's
data and result at once; results come back in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

from fluxora.config import InfraConfig
from fluxora.errors import ConfigError
from fluxora.fanout import SERIAL, FanOut

T = TypeVar("T")
R = TypeVar("R")


@task(name="per-series", cache_policy=NO_CACHE, persist_result=False)
def per_series(fn: Callable[[Any], Any], item: Any) -> Any:
    """One unit of per-series work (runs on a Dask worker)."""
    return fn(item)


class TaskRunnerFanOut:
    """`FanOut` over a started Prefect task runner; at most `in_flight` units submitted at once."""

    def __init__(self, runner: Any, in_flight: int) -> None:
        self.runner = runner
        self.in_flight = max(1, in_flight)

    @property
    def client(self) -> Any:
        """The cluster's `distributed.Client`: work that has its own Dask interface (the final
        XGBoost fit, `fluxora.models.distributed`) runs on the same workers."""
        return self.runner.client

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        pending: deque[Any] = deque()
        for item in items:
            pending.append(self.runner.submit(per_series, {"fn": fn, "item": item}))
            if len(pending) >= self.in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def dask_runner(infra: InfraConfig, api_url: str = "") -> Any:
    """The DaskTaskRunner for this infra: an existing scheduler, else a local cluster whose
    workers report to the Prefect API at `api_url` (on a cluster, its workers' own setting)."""
    from prefect_dask import DaskTaskRunner

    if infra.dask_address:
        return DaskTaskRunner(address=infra.dask_address)
    kwargs: dict[str, Any] = {
        "n_workers": infra.dask_n_workers,
        "threads_per_worker": infra.dask_threads_per_worker,
        "processes": True,
        "dashboard_address": ":0",  # any free port: a fixed one collides on a shared machine
    }
    if api_url:
        # Workers record their task runs with this process's Prefect API; without it each worker
        # would start a temporary Prefect server of its own (about a minute each, and runs not shown).
        kwargs["env"] = {"PREFECT_API_URL": api_url}
    return DaskTaskRunner(cluster_kwargs=kwargs)


def _prefect_api_url() -> str:
    """The Prefect API this process talks to (a configured server, or its temporary one)."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    if configured := PREFECT_API_URL.value():
        return str(configured)
    with get_client(sync_client=True) as client:
        return str(client.api_url).rstrip("/")


@contextmanager
def fan_out(infra: InfraConfig, runner: Any = None) -> Iterator[FanOut]:
    """The fan-out for one step: serial, or a Dask task runner started here and shut down after.

    `runner` replaces the configured Dask runner (tests pass a small in-process cluster)."""
    if infra.task_runner == "serial" and runner is None:
        yield SERIAL
        return
    if infra.task_runner not in ("serial", "dask"):
        raise ConfigError(f"invalid configuration: infra.task_runner: {infra.task_runner!r} (use serial or dask)")
    with runner or dask_runner(infra, "" if infra.dask_address else _prefect_api_url()) as started:
        threads = sum(started.client.nthreads().values()) or infra.dask_n_workers
        yield TaskRunnerFanOut(started, in_flight=2 * threads)
