"""API key management (admin): create (the key is shown once), list, revoke.

A series-scoped admin key manages only keys within its own scope: it creates keys whose scope
is a subset of its own (`granted_scope`), and lists and revokes only keys whose scope is
(`Principal.covers`); an unscoped admin (a JWT, or a key made without `--series`) manages all.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from fluxora.api.deps import Admin, Svc, error_responses, granted_scope
from fluxora.api.schemas import KeyCreate, KeyCreated, KeyInfo, KeyList
from fluxora.servicedb import accounts
from fluxora.servicedb.models import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        prefix=row.prefix,
        name=row.name,
        role=row.role,
        series=row.series,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.post(
    "", response_model=KeyCreated, status_code=status.HTTP_201_CREATED, responses=error_responses(401, 403, 422, 429)
)
def create(svc: Svc, who: Admin, body: KeyCreate) -> KeyCreated:
    """A new key; the response is the only time the key is shown.

    Its series scope is never wider than the caller's: a scoped admin asking for every series
    (`series` null or absent) gets a key with the caller's own scope, and asking for a series
    outside its scope is 403."""
    series = granted_scope(who, body.series)
    with svc.sessions() as session:
        row, key = accounts.create_key(session, body.name, body.role, series)
        return KeyCreated(**_info(row).model_dump(), key=key)


@router.get("", response_model=KeyList, responses=error_responses(401, 403, 429))
def list_keys(svc: Svc, who: Admin) -> KeyList:
    """Every key's metadata (never the key or its hash). A scoped admin sees only the keys
    within its own scope (itself and the keys it could have created), not unscoped keys."""
    with svc.sessions() as session:
        return KeyList(keys=[_info(r) for r in accounts.list_keys(session) if who.covers(r.series)])


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422, 429),
)
def revoke(svc: Svc, who: Admin, key_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> Response:
    """Revoke a key: it stops working at once on this worker, within `key_cache_s` on others.

    A scoped admin may revoke only keys within its own scope; any other key is 404, as if it did
    not exist (the same answer as for an unknown id, so other scopes' keys cannot be probed)."""
    with svc.sessions() as session:
        row = accounts.revoke_key(session, key_id, allowed=lambda key: who.covers(key.series))
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no active key with id {key_id}")
        svc.keys.forget(row.prefix)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
