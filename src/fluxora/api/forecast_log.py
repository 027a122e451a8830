"""The forecast log, written off the request path.

Requests put rows on an in-memory queue (microseconds); one writer thread inserts them in
batches. `close()` drains the queue, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from fluxora.api.db import ForecastLog

log = logging.getLogger("fluxora.api")
BATCH = 500
_STOP = object()


class ForecastLogWriter:
    """Batches forecast-log rows into the database from a background thread."""

    def __init__(
        self,
        engine: Engine,
        flush_s: float = 1.0,
        max_queue: int = 100_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._flush_s = flush_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._on_drop = on_drop
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fluxora-forecast-log", daemon=True)
            self._thread.start()

    def submit(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows (dicts of ForecastLog columns). Never blocks; counts drops if overloaded."""
        for row in rows:
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                self.dropped += 1
                if self._on_drop is not None:
                    self._on_drop(1)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[dict[str, Any]] = []
            try:
                item = self._queue.get(timeout=self._flush_s)
            except queue.Empty:
                continue
            while True:
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
                if len(batch) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if stopping:  # drain whatever arrived before the stop marker's successors
                while True:
                    try:
                        extra = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if extra is not _STOP:
                        batch.append(extra)
            self._write(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        for start in range(0, len(batch), BATCH):
            chunk = batch[start : start + BATCH]
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(ForecastLog), chunk)
                self.written += len(chunk)
            except Exception:  # the log must never take the service down; count and report
                log.exception("could not write %d forecast-log rows", len(chunk))
                self.dropped += len(chunk)
                if self._on_drop is not None:
                    self._on_drop(len(chunk))
