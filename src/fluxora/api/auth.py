"""Who is calling: the principal of a request, from an API key (prefix + hash) or a JWT.

The users and keys themselves, and the hashes stored in place of their secrets, are in the
service database (`fluxora.servicedb.accounts`).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.orm import Session, sessionmaker

from fluxora.api.settings import JWT_ALGORITHM
from fluxora.servicedb.accounts import KEY_PREFIX, check_password, find_key, key_digest
from fluxora.servicedb.models import ROLES, User


class AuthError(Exception):
    """Credentials missing or invalid (401)."""


class ForbiddenError(Exception):
    """Valid credentials without the right to do this (403)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (JWT) or an API key, with a role and an optional series scope."""

    kind: str  # "user" | "key"
    subject: str  # username, or "key:<prefix>"
    role: str
    series: frozenset[str] | None = None  # None: every series

    def require(self, role: str) -> None:
        if role == "admin" and self.role != "admin":
            raise ForbiddenError("this needs the admin role")

    # The scope rules, in one place: what a caller may read, which keys it may see or revoke,
    # and which scope a key it creates may have. An unscoped caller (a user's JWT, or a key
    # made without --series) may do all of it; a scoped one stays within its own series.

    def check_series(self, series_ids: list[str]) -> None:
        """Refuses (403) reading any series outside this caller's scope."""
        if self.series is None:
            return
        outside = sorted(set(series_ids) - self.series)
        if outside:
            raise ForbiddenError(f"this key may not read series {outside}")

    def covers(self, scope: list[str] | None) -> bool:
        """Whether everything a key with `scope` (None: every series) may read, this caller may too."""
        if self.series is None:
            return True
        return scope is not None and set(scope) <= self.series

    def grant(self, requested: list[str] | None) -> list[str] | None:
        """The scope of a key this caller creates: what was asked for, never wider than the
        caller's own. A scoped caller asking for every series (None) gets its own scope; asking
        for series outside it is refused (403)."""
        if self.series is None:
            return requested
        if requested is None:
            return sorted(self.series)
        outside = sorted(set(requested) - self.series)
        if outside:
            raise ForbiddenError(f"this key may only create keys within its own series scope; {outside} are outside it")
        return requested


# --- users ------------------------------------------------------------------------------------


def authenticate_user(session: Session, username: str, password: str) -> User:
    user = check_password(session, username, password)
    if user is None:
        raise AuthError("incorrect username or password")
    return user


# --- API keys ---------------------------------------------------------------------------------


def _split_key(key: str) -> tuple[str, str]:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        raise AuthError("malformed API key")
    return parts[1], parts[2]


class KeyVerifier:
    """Checks `X-API-Key` values against the database, trusting a verified key for `cache_s`
    seconds (bounded staleness for revocations made by other workers; this worker's own
    revocations take effect at once through `forget`)."""

    def __init__(self, session_factory: sessionmaker[Session], cache_s: float) -> None:
        self._sessions = session_factory
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, str, Principal]] = {}  # prefix -> (expiry, digest, principal)
        self._lock = threading.Lock()

    def cached(self, key: str) -> Principal | None:
        """The principal if this exact key was verified less than `cache_s` ago (no database read)."""
        prefix, secret = _split_key(key)
        hit = self._cache.get(prefix)
        if hit is not None and hit[0] > time.monotonic() and hmac.compare_digest(hit[1], key_digest(secret)):
            return hit[2]
        return None

    def verify(self, key: str) -> Principal:
        hit = self.cached(key)
        if hit is not None:
            return hit
        prefix, secret = _split_key(key)
        digest = key_digest(secret)
        now = time.monotonic()
        with self._sessions() as session:
            row = find_key(session, prefix)
            stored = row.key_hash if row is not None else key_digest(secrets.token_urlsafe(8))
            if not hmac.compare_digest(stored, digest) or row is None or row.revoked_at is not None:
                raise AuthError("invalid or revoked API key")
            scope = frozenset(row.series) if row.series is not None else None
            principal = Principal("key", f"key:{prefix}", row.role, scope)
        if self._cache_s > 0:
            with self._lock:
                self._cache[prefix] = (now + self._cache_s, digest, principal)
        return principal

    def forget(self, prefix: str) -> None:
        with self._lock:
            self._cache.pop(prefix, None)


# --- JWT --------------------------------------------------------------------------------------


def issue_token(user: User, secret: str, audience: str, ttl: timedelta) -> str:
    now = datetime.now(UTC)
    claims = {"sub": user.username, "role": user.role, "aud": audience, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def verify_token(token: str, secret: str, audience: str) -> Principal:
    """Pinned algorithm; `exp`, `iat`, `aud` and `sub` are required; anything else is 401."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            audience=audience,
            options={"require": ["exp", "iat", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    role = claims.get("role")
    if role not in ROLES or not isinstance(claims["sub"], str):
        raise AuthError("invalid token: bad claims")
    return Principal("user", claims["sub"], role)
