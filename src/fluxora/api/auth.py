"""Credentials: password hashing, API keys (prefix + hash), JWTs, and the principal of a request.

API keys are 256-bit random secrets, so a fast SHA-256 is enough to store them safely (a slow
hash defends low-entropy passwords, not random keys) and keeps the per-request check cheap.
Passwords use argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fluxora.api.db import ROLES, ApiKey, User
from fluxora.api.settings import JWT_ALGORITHM

KEY_PREFIX = "flx"
_hasher = PasswordHasher()
# Verified against when a username does not exist, so both paths cost one argon2 verification.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


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

    def check_series(self, series_ids: list[str]) -> None:
        if self.series is None:
            return
        outside = sorted(set(series_ids) - self.series)
        if outside:
            raise ForbiddenError(f"this key may not read series {outside}")


# --- passwords and users ----------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_user(session: Session, username: str, password: str, role: str = "reader") -> User:
    _check_role(role)
    if not username or len(username) > 100:
        raise ValueError("username must be 1 to 100 characters")
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise ValueError(f"user {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role)
    session.add(user)
    session.commit()
    return user


def authenticate_user(session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None and user.disabled_at is None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise AuthError("incorrect username or password") from None
    if user is None or user.disabled_at is not None:
        raise AuthError("incorrect username or password")
    return user


# --- API keys ---------------------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {list(ROLES)}")


def create_key(
    session: Session, name: str, role: str = "reader", series: list[str] | None = None
) -> tuple[ApiKey, str]:
    """Store a new key; returns (row, the key). The key itself is never stored or shown again."""
    _check_role(role)
    if series is not None and (not series or any(not s for s in series)):
        raise ValueError("series scope must name at least one non-empty series id")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        prefix=prefix,
        key_hash=_digest(secret),
        name=name,
        role=role,
        series=sorted(set(series)) if series is not None else None,
    )
    session.add(row)
    session.commit()
    return row, f"{KEY_PREFIX}_{prefix}_{secret}"


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
        if hit is not None and hit[0] > time.monotonic() and hmac.compare_digest(hit[1], _digest(secret)):
            return hit[2]
        return None

    def verify(self, key: str) -> Principal:
        hit = self.cached(key)
        if hit is not None:
            return hit
        prefix, secret = _split_key(key)
        digest = _digest(secret)
        now = time.monotonic()
        with self._sessions() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            stored = row.key_hash if row is not None else _digest(secrets.token_urlsafe(8))
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


def revoke_key(session: Session, key_id: int) -> ApiKey | None:
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return None
    row.revoked_at = datetime.now(UTC)
    session.commit()
    return row


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
