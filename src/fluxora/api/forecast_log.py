"""The forecast log, written off the request path.

Requests append rows to an in-memory deque (a fraction of a microsecond, no lock, no thread
wake-up); one writer thread wakes every `flush_s` seconds and inserts everything queued in
batches. Waking the writer per row, as a `queue.Queue` does, cost the request path a thread
switch and a one-row transaction per request under load. `close()` drains the deque, so a
clean shutdown loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from fluxora.servicedb.models import ForecastLog

log = logging.getLogger("fluxora.api")
BATCH = 500


class ForecastLogWriter:
    """Batches forecast-log rows into the database from a background thread."""

    def __init__(
        self,
        engine: Engine,
        flush_s: float = 0.2,
        max_queue: int = 100_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._flush_s = flush_s
        self._rows: deque[dict[str, Any]] = deque()  # append/popleft are atomic: no lock needed
        self._max_queue = max_queue
        self._on_drop = on_drop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="fluxora-forecast-log", daemon=True)
            self._thread.start()

    def submit(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows (dicts of ForecastLog columns). Never blocks; beyond `max_queue` queued
        rows (the database is down or slower than traffic) new rows are dropped and counted."""
        room = self._max_queue - len(self._rows)
        if room >= len(rows):
            self._rows.extend(rows)
            return
        self._rows.extend(rows[: max(room, 0)])
        lost = len(rows) - max(room, 0)
        self.dropped += lost
        if self._on_drop is not None:
            self._on_drop(lost)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, then stop the writer."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._flush_s):
            self._drain()
        self._drain()  # rows queued before close()

    def _drain(self) -> None:
        rows = self._rows
        while rows:
            batch = [rows.popleft() for _ in range(min(BATCH, len(rows)))]
            self._write(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(ForecastLog), batch)
            self.written += len(batch)
        except Exception:  # the log must never take the service down; count and report
            log.exception("could not write %d forecast-log rows", len(batch))
            self.dropped += len(batch)
            if self._on_drop is not None:
                self._on_drop(len(batch))
