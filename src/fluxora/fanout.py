"""Fan-out of per-series work: one `map` the library calls, run serially or on a task runner.

Library code hands coarse, independent work units (a model fitted on a group of series, the
metrics of a chunk of series) to `FanOut.map`. `Serial` runs them in this process, one after the
other, with no scheduler started: the default, and right for small data. The Prefect flows pass a
fan-out backed by Prefect's Dask task runner when `infra.task_runner=dask` (`flows/fanout.py`);
the library never imports Prefect or Dask. Work units and their results travel between
processes, so `fn` must be picklable (a module-level function or a `functools.partial` of one)
and each item should carry only the data its unit needs.

A fan-out on a Dask cluster also has a `client` (a `distributed.Client` on the same workers):
work with a Dask interface of its own, the final XGBoost fit (`fluxora.models.distributed`),
uses it directly; `Serial` has none, and then that work runs in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class FanOut(Protocol):
    """Runs `fn` on every item; results come back in the items' order, lazily."""

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]: ...


class Serial:
    """In-process, one item at a time (items are consumed lazily, so memory holds one unit)."""

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return (fn(item) for item in items)


SERIAL: FanOut = Serial()


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """Consecutive slices of at most `size` items (at least one item each)."""
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]
