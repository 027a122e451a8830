"""Per-consumer rate limits: a token bucket in memory (one process), or a fixed window in Redis
(shared by every worker, so the limit holds across processes)."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("fluxora.api")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0


class RateLimiter(Protocol):
    blocking: bool  # True: `hit` does network I/O and must run off the event loop

    def hit(self, consumer: str) -> Decision: ...


class NoLimit:
    blocking = False

    def hit(self, consumer: str) -> Decision:
        return Decision(True)


class MemoryRateLimiter:
    """Token bucket per consumer: `per_minute` sustained, up to `burst` at once."""

    blocking = False

    def __init__(self, per_minute: int, burst: int, clock: Any = time.monotonic) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(max(burst, 1))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # consumer -> (tokens, last time)
        self._lock = threading.Lock()

    def hit(self, consumer: str) -> Decision:
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(consumer, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                self._buckets[consumer] = (tokens - 1.0, now)
                return Decision(True)
            self._buckets[consumer] = (tokens, now)
        return Decision(False, max(1, math.ceil((1.0 - tokens) / self._rate)))


class RedisRateLimiter:
    """Fixed one-minute windows counted in Redis (`INCR` + `EXPIRE`), shared by all workers.
    If Redis is unreachable the request is let through and the failure logged: an outage of
    the limiter must not become an outage of the API."""

    blocking = True

    def __init__(self, url: str, per_minute: int, prefix: str = "fluxora:ratelimit", window_s: int = 60) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._limit = per_minute
        self._prefix = prefix
        self._window = window_s
        self.errors = 0

    def hit(self, consumer: str) -> Decision:
        import redis

        now = time.time()
        window = int(now // self._window)
        key = f"{self._prefix}:{consumer}:{window}"
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, self._window + 1)
            count = int(pipe.execute()[0])
        except redis.RedisError as exc:
            self.errors += 1
            log.warning("rate limiter: Redis unavailable, allowing request: %s", exc)
            return Decision(True)
        if count <= self._limit:
            return Decision(True)
        return Decision(False, max(1, math.ceil((window + 1) * self._window - now)))


def make_limiter(per_minute: int, burst: int, redis_url: str = "") -> RateLimiter:
    if per_minute <= 0:
        return NoLimit()
    if redis_url:
        return RedisRateLimiter(redis_url, per_minute)
    return MemoryRateLimiter(per_minute, burst)
