"""Per-consumer rate limits: a token bucket in memory (one process), or a fixed window in Redis
(shared by every worker, so the limit holds across processes).

A limiter counts `limit` hits per `window_s` for each consumer. `hit` counts one and says
whether it was allowed; `peek` says whether the next hit would be, without counting (the
login throttle counts only failed attempts, but refuses any attempt once they are used up)."""

from __future__ import annotations

import hashlib
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

    def peek(self, consumer: str) -> Decision: ...


class NoLimit:
    blocking = False

    def hit(self, consumer: str) -> Decision:
        return Decision(True)

    def peek(self, consumer: str) -> Decision:
        return Decision(True)


class MemoryRateLimiter:
    """Token bucket per consumer: `per_minute` (or `per_window` per `window_s`) sustained, up
    to `burst` at once."""

    blocking = False

    def __init__(self, per_minute: int, burst: int, clock: Any = time.monotonic, window_s: float = 60.0) -> None:
        self._rate = per_minute / window_s
        self._burst = float(max(burst, 1))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # consumer -> (tokens, last time)
        self._lock = threading.Lock()

    def _tokens(self, consumer: str, now: float) -> float:
        tokens, last = self._buckets.get(consumer, (self._burst, now))
        return min(self._burst, tokens + (now - last) * self._rate)

    def _denied(self, tokens: float) -> Decision:
        return Decision(False, max(1, math.ceil((1.0 - tokens) / self._rate)))

    def hit(self, consumer: str) -> Decision:
        now = self._clock()
        with self._lock:
            tokens = self._tokens(consumer, now)
            if tokens >= 1.0:
                self._buckets[consumer] = (tokens - 1.0, now)
                return Decision(True)
            self._buckets[consumer] = (tokens, now)
        return self._denied(tokens)

    def peek(self, consumer: str) -> Decision:
        with self._lock:
            tokens = self._tokens(consumer, self._clock())
        return Decision(True) if tokens >= 1.0 else self._denied(tokens)


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
        return self._count(consumer, counting=True)

    def peek(self, consumer: str) -> Decision:
        return self._count(consumer, counting=False)

    def _count(self, consumer: str, counting: bool) -> Decision:
        import redis

        now = time.time()
        window = int(now // self._window)
        key = f"{self._prefix}:{consumer}:{window}"
        try:
            if counting:
                pipe = self._redis.pipeline(transaction=True)
                pipe.incr(key)
                pipe.expire(key, self._window + 1)
                count = int(pipe.execute()[0])
            else:
                stored: Any = self._redis.get(key)
                count = int(stored or 0) + 1  # what the next hit would count
        except redis.RedisError as exc:
            self.errors += 1
            log.warning("rate limiter: Redis unavailable, allowing request: %s", exc)
            return Decision(True)
        if count <= self._limit:
            return Decision(True)
        return Decision(False, max(1, math.ceil((window + 1) * self._window - now)))


def make_limiter(
    per_minute: int, burst: int, redis_url: str = "", *, window_s: int = 60, prefix: str = "fluxora:ratelimit"
) -> RateLimiter:
    """`per_minute` hits (per `window_s`, a minute unless given) per consumer; 0 disables.
    Redis-backed (shared by every worker) when `redis_url` is set, else in this process's memory."""
    if per_minute <= 0:
        return NoLimit()
    if redis_url:
        return RedisRateLimiter(redis_url, per_minute, prefix=prefix, window_s=window_s)
    return MemoryRateLimiter(per_minute, burst, window_s=window_s)


@dataclass(frozen=True)
class Refusal:
    retry_after_s: int
    reason: str


class LoginThrottle:
    """Failed logins counted per username and per client address, `per_user` / `per_address`
    in `login_window_s` (0 disables that count), on the same limiters as request rate limits:
    in memory, or in Redis shared by every worker. Once a username's or an address's failures
    are used up, every attempt for it is refused (429) before the password is checked, so a
    guess that happens to be right is not told apart and costs no argon2 verification.
    Successful logins are not counted, and one username's failures do not block other users
    (unless they come from the same address). The check and the count are separate calls:
    attempts already in flight when the limit is reached may each still be counted."""

    def __init__(self, per_user: int, per_address: int, window_s: int, redis_url: str = "") -> None:
        prefix = "fluxora:login"
        self._user = make_limiter(per_user, per_user, redis_url, window_s=window_s, prefix=f"{prefix}:user")
        self._address = make_limiter(per_address, per_address, redis_url, window_s=window_s, prefix=f"{prefix}:addr")
        self.blocking = self._user.blocking or self._address.blocking

    @staticmethod
    def user_key(username: str) -> str:
        return hashlib.sha256(username.encode()).hexdigest()[:32]  # bounded, any characters

    def check(self, username: str, address: str) -> Refusal | None:
        """Why an attempt for `username` from `address` is refused now, or None."""
        for limiter, consumer, what in (
            (self._user, self.user_key(username), "for this username"),
            (self._address, address, "from this address"),
        ):
            decision = limiter.peek(consumer)
            if not decision.allowed:
                wait = decision.retry_after_s
                return Refusal(wait, f"too many failed logins {what}; try again in {wait} s")
        return None

    def failed(self, username: str, address: str) -> None:
        self._user.hit(self.user_key(username))
        self._address.hit(address)
