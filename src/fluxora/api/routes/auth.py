"""POST /v1/auth/token: OAuth2 password flow → a short-lived JWT."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordRequestForm

from fluxora.api.auth import AuthError, authenticate_user, issue_token
from fluxora.api.deps import UNAUTHORIZED, Services, Svc, error_responses, rate_limit
from fluxora.api.schemas import Token

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token", response_model=Token, responses=error_responses(401, 413, 422, 429))
async def token(request: Request, svc: Svc, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    """Exchange a username and password for a bearer token (send as `Authorization: Bearer`).

    Failed attempts are throttled per username and per client address (`login_failures_per_user`,
    `login_failures_per_address` in `login_window_s`): past them, 429 with `Retry-After`, whether
    or not the password is right, until the window passes."""
    client = request.client.host if request.client else "unknown"
    await rate_limit(svc, f"login:{client}")  # every attempt, at the request rate limit
    return await run_in_threadpool(_login, svc, form.username, form.password, client)


def _login(svc: Services, username: str, password: str, client: str) -> Token:
    """In the thread pool: the throttle may ask Redis, and the password check is argon2."""
    throttle = svc.login_throttle
    refused = throttle.check(username, client)  # before the argon2 check: a flood costs no hashing
    if refused is not None:
        svc.metrics.rate_limited.inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=refused.reason,
            headers={"Retry-After": str(refused.retry_after_s)},
        )
    try:
        with svc.sessions() as session:
            user = authenticate_user(session, username, password)
    except AuthError as exc:
        throttle.failed(username, client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(exc), headers=UNAUTHORIZED) from None
    ttl = timedelta(minutes=svc.settings.token_ttl_minutes)
    jwt = issue_token(user, svc.secret, svc.settings.jwt_audience, ttl)
    return Token(access_token=jwt, expires_in=int(ttl.total_seconds()))
