"""The forecast log, written off the request path, durable across a hard kill.

Requests append rows to an in-memory list and, with a write-ahead directory (the service always
gives one), to a local append-only file, one JSON line per row, in one `write` system call made
before the response is sent. One writer thread wakes every `flush_s` seconds, swaps in a fresh
list and file (a *segment*), inserts the swapped rows in one transaction, and deletes that
segment once the transaction has committed. A segment that cannot be committed (the database is
down) is fsynced and kept, and retried every cycle. Waking the writer per row, as a `queue.Queue`
does, cost the request path a thread switch and a one-row transaction per request under load.

Each writer owns its segments (`<owner>.<n>.jsonl`) and holds an exclusive lock on
`<owner>.lock` while it runs; the kernel releases the lock when the process dies, however it
dies. At start a writer adopts the segments of every owner whose lock it can take (a process that
died) and writes them to the database before serving: a segment whose last row is already in the
database had committed before the kill and is only deleted, so a replay inserts nothing twice.

**The bound.**
- A clean shutdown (`close()`) loses nothing; if the database is down then, the rows stay on
  disk and the next start writes them.
- A hard kill of the process (SIGKILL, OOM killer, crash): no row of a forecast whose response
  was sent is lost (it was in the operating system's page cache before the response left).
- A crash of the machine itself (power loss, kernel panic): at most the rows of the last
  `flush_s` seconds (`serve.log_flush_s`, 0.2 s by default) and of the cycle being committed,
  which were neither committed to the database nor fsynced yet.
- If the write-ahead file cannot be written (disk full), rows are kept in memory only, as
  without one, and counted in `wal_errors`; beyond `max_queue` rows waiting (the database is
  down or slower than traffic), new rows are dropped and counted (`dropped`, the
  `fluxora_forecast_log_dropped_total` metric).

`benchmarks/forecast_log.py` measures the cost (rows per second with and without the file).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, insert, select
from sqlalchemy.engine import Engine

from fluxora.servicedb.models import EncodedJSON, ForecastLog

log = logging.getLogger("fluxora.api")
BATCH = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DATETIMES = tuple(c.name for c in ForecastLog.__table__.columns if isinstance(c.type, DateTime))
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_string = json.encoder.encode_basestring_ascii


def _value(value: Any) -> str:
    # By type, cheapest first: a general encoder call per scalar would cost more than the write.
    if isinstance(value, EncodedJSON):
        return str.__str__(value)  # already JSON
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # microseconds since the epoch: ~5x cheaper than isoformat()
            return int.__repr__((value - _EPOCH) // _MICROSECOND)
        return f'"{value.isoformat()}"'
    return _dumps(value)


def _line(row: dict[str, Any]) -> str:
    """One row as a JSON line; pre-encoded JSON values (`EncodedJSON`) are embedded as they are."""
    return "{" + ",".join(f"{_string(k)}:{_value(v)}" for k, v in row.items()) + "}\n"


def _parse(line: str) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(line)
    for key in _DATETIMES:
        value = row.get(key)
        if isinstance(value, int):
            row[key] = _EPOCH + timedelta(microseconds=value)
        elif isinstance(value, str):
            row[key] = datetime.fromisoformat(value)
    return row


def _same_keys(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An executemany needs every row to name the same columns: rows written before a column was
    added (a replayed segment, a caller that omits a nullable column) get None for it."""
    if not rows:
        return rows
    first = rows[0].keys()
    if all(r.keys() == first for r in rows):
        return rows
    keys = dict.fromkeys(k for r in rows for k in r)
    return [dict.fromkeys(keys) | r for r in rows]


@dataclass
class _Segment:
    """Rows swapped out together: committed in one transaction, then their file is deleted."""

    rows: list[dict[str, Any]]
    path: Path | None = None  # its write-ahead file, if any
    replayed: bool = False  # adopted from a dead writer: may already be in the database
    lock_fd: int | None = None  # the dead owner's lock, held until its segments are written
    synced: bool = False


class ForecastLogWriter:
    """Batches forecast-log rows into the database from a background thread; with `wal_dir`, each
    row is also on local disk from `submit` until its batch has committed (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        flush_s: float = 0.2,
        max_queue: int = 100_000,
        on_drop: Callable[[int], None] | None = None,
        wal_dir: Path | None = None,
        on_replay: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._flush_s = flush_s
        self._max_queue = max_queue
        self._on_drop = on_drop
        self._on_replay = on_replay
        self._wal_dir = wal_dir
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._lock_fd: int | None = None
        self._seq = 0
        self._fd: int | None = None  # the current segment's file
        self._path: Path | None = None
        self._rows: list[dict[str, Any]] = []
        self._swap = threading.Lock()  # submit vs the writer swapping in a fresh list and file
        self._pending: list[_Segment] = []  # swapped out, not committed yet (writer thread only)
        self._waiting = 0  # rows in _pending
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.replayed = 0
        self.wal_errors = 0

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Take this writer's lock, write what dead writers left on disk, start the thread."""
        if self._thread is not None:
            return
        if self._wal_dir is not None:
            self._wal_dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = self._take_lock(self._wal_dir / f"{self._owner}.lock")
            self._adopt_orphans()
            self._open_segment()
            self._commit_pending()  # before serving; what fails is retried by the thread
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fluxora-forecast-log", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, then stop the writer. Rows the database refuses stay
        on disk (with a write-ahead directory) for the next start."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None
        if self._wal_dir is None:
            return
        with self._swap:
            fd, path, self._fd, self._path = self._fd, self._path, None, None
        if fd is not None:
            os.close(fd)
        if path is not None and path.stat().st_size == 0:
            path.unlink(missing_ok=True)
        for segment in self._pending:  # kept for the next start: make sure they are on disk
            self._sync(segment)
            if segment.lock_fd is not None:
                os.close(segment.lock_fd)
        if self._lock_fd is not None:
            if not self._pending:
                (self._wal_dir / f"{self._owner}.lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- the request path ---------------------------------------------------------------------

    def submit(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows (dicts of ForecastLog columns), on disk first when there is a write-ahead
        file. Never blocks on the database; beyond `max_queue` waiting rows new rows are dropped
        and counted."""
        with self._swap:
            room = self._max_queue - len(self._rows) - self._waiting
            kept = rows if room >= len(rows) else rows[: max(room, 0)]
            if kept and self._fd is not None:
                try:
                    os.write(self._fd, "".join(_line(r) for r in kept).encode())
                except OSError as exc:  # disk full, say: still logged from memory, as without a file
                    self.wal_errors += 1
                    log.error("forecast log: could not write the write-ahead file %s: %s", self._path, exc)
            self._rows.extend(kept)
        lost = len(rows) - len(kept)
        if lost:
            self.dropped += lost
            if self._on_drop is not None:
                self._on_drop(lost)

    # --- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._flush_s):
            self._cycle()
        self._cycle()  # rows queued before close()

    def _cycle(self) -> None:
        with self._swap:
            rows, self._rows = self._rows, []
            path = self._path
            fd = self._fd
            if rows and fd is not None:
                self._open_segment()
        if rows:
            if fd is not None:
                os.close(fd)
            self._pending.append(_Segment(rows, path if fd is not None else None))
            self._waiting += len(rows)
        self._commit_pending()

    def _commit_pending(self) -> None:
        """Commit waiting segments oldest first; stop at the first the database refuses."""
        while self._pending:
            segment = self._pending[0]
            try:
                n = self._commit(segment)
            except Exception:  # the log must never take the service down; kept, retried next cycle
                log.exception("could not write %d forecast-log rows; kept for a retry", len(segment.rows))
                if self._wal_dir is None:  # nowhere to keep them
                    self._pending.pop(0)
                    self._waiting -= len(segment.rows)
                    self.dropped += len(segment.rows)
                    if self._on_drop is not None:
                        self._on_drop(len(segment.rows))
                    continue
                self._sync(segment)
                return
            self._pending.pop(0)
            self._waiting -= len(segment.rows)
            if segment.replayed:
                self.replayed += n
                if self._on_replay is not None and n:
                    self._on_replay(n)
            else:
                self.written += n
            if segment.path is not None:
                segment.path.unlink(missing_ok=True)
            if segment.lock_fd is not None:
                self._release_orphan(segment)

    def _commit(self, segment: _Segment) -> int:
        rows = _same_keys(segment.rows)
        with self._engine.begin() as conn:
            if segment.replayed and rows and self._present(conn, rows[-1]):
                return 0  # the dead writer committed it before it was killed
            for i in range(0, len(rows), BATCH):
                conn.execute(insert(ForecastLog), rows[i : i + BATCH])
        return len(rows)

    @staticmethod
    def _present(conn: Any, row: dict[str, Any]) -> bool:
        """Whether `row` (a segment's last, so the whole segment) is in the database already."""
        t = ForecastLog
        where = [t.served_at == row["served_at"], t.series_id == row["series_id"], t.endpoint == row["endpoint"]]
        where.append(t.request_id.is_(None) if row.get("request_id") is None else t.request_id == row["request_id"])
        return conn.execute(select(t.id).where(*where).limit(1)).first() is not None

    # --- files --------------------------------------------------------------------------------

    def _open_segment(self) -> None:
        assert self._wal_dir is not None
        self._seq += 1
        self._path = self._wal_dir / f"{self._owner}.{self._seq:09d}.jsonl"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _sync(self, segment: _Segment) -> None:
        if segment.path is None or segment.synced:
            return
        try:
            fd = os.open(segment.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            segment.synced = True
        except OSError as exc:
            log.warning("forecast log: could not fsync %s: %s", segment.path, exc)

    @staticmethod
    def _take_lock(path: Path) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _adopt_orphans(self) -> None:
        """Queue the segments of every writer that died (its lock is free), oldest first."""
        assert self._wal_dir is not None
        for lock in sorted(self._wal_dir.glob("*.lock")):
            owner = lock.name.removesuffix(".lock")
            if owner == self._owner:
                continue
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live writer (this process or another)
                continue
            files = sorted(self._wal_dir.glob(f"{owner}.*.jsonl"))
            segments = [_Segment(self._read(path), path, replayed=True, synced=True) for path in files]
            if not segments:
                lock.unlink(missing_ok=True)
                os.close(fd)
                continue
            segments[-1].lock_fd = fd  # released once its last segment is written
            rows = sum(len(s.rows) for s in segments)
            log.warning("forecast log: %d rows left by an earlier process (%s); writing them", rows, owner)
            self._pending.extend(segments)
            self._waiting += rows

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(_parse(line))
            except ValueError:  # a line torn by a machine crash mid-write: the only kind possible
                log.warning("forecast log: skipped an unreadable line %d of %s", number, path)
        return rows

    def _release_orphan(self, segment: _Segment) -> None:
        assert segment.lock_fd is not None and segment.path is not None and self._wal_dir is not None
        owner = segment.path.name.split(".", 1)[0]
        (self._wal_dir / f"{owner}.lock").unlink(missing_ok=True)
        os.close(segment.lock_fd)
        segment.lock_fd = None
