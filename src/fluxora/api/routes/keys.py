"""API key management (admin): create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from fluxora.api.deps import Admin, Svc, error_responses
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
    """A new key; the response is the only time the key is shown."""
    with svc.sessions() as session:
        row, key = accounts.create_key(session, body.name, body.role, body.series)
        return KeyCreated(**_info(row).model_dump(), key=key)


@router.get("", response_model=KeyList, responses=error_responses(401, 403, 429))
def list_keys(svc: Svc, who: Admin) -> KeyList:
    """Every key's metadata (never the key or its hash)."""
    with svc.sessions() as session:
        return KeyList(keys=[_info(r) for r in accounts.list_keys(session)])


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422, 429),
)
def revoke(svc: Svc, who: Admin, key_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> Response:
    """Revoke a key: it stops working at once on this worker, within `key_cache_s` on others."""
    with svc.sessions() as session:
        row = accounts.revoke_key(session, key_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no active key with id {key_id}")
        svc.keys.forget(row.prefix)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
