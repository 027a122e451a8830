"""Users and API keys in the service database: create, list, revoke, and the hashes stored in
place of secrets. The HTTP side (who is calling, JWTs, the per-request key check) is
`fluxora.api.auth`.

API keys are 256-bit random secrets, so a fast SHA-256 is enough to store them safely (a slow
hash defends low-entropy passwords, not random keys) and keeps the per-request check cheap.
Passwords use argon2.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from fluxora.servicedb.models import ROLES, ApiKey, User

KEY_PREFIX = "flx"  # a key reads flx_<prefix>_<secret>
_hasher = PasswordHasher()
# Verified against when a username does not exist, so both paths cost one argon2 verification.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {list(ROLES)}")


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


def check_password(session: Session, username: str, password: str) -> User | None:
    """The enabled user with this username and password, else None. One argon2 verification
    whether or not the user exists, so the time taken does not tell which usernames do."""
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None and user.disabled_at is None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    return user


# --- API keys ---------------------------------------------------------------------------------


def key_digest(secret: str) -> str:
    """What is stored of a key's secret part."""
    return hashlib.sha256(secret.encode()).hexdigest()


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
        key_hash=key_digest(secret),
        name=name,
        role=role,
        series=sorted(set(series)) if series is not None else None,
    )
    session.add(row)
    session.commit()
    return row, f"{KEY_PREFIX}_{prefix}_{secret}"


def find_key(session: Session, prefix: str) -> ApiKey | None:
    """The key with this public prefix, revoked or not."""
    return session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, key_id: int, allowed: Callable[[ApiKey], bool] | None = None) -> ApiKey | None:
    """Revoke an active key; None when there is no active key with this id, or `allowed` says
    this one may not be revoked (by this caller)."""
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None or (allowed is not None and not allowed(row)):
        return None
    row.revoked_at = datetime.now(UTC)
    session.commit()
    return row
