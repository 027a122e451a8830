"""One pure-ASGI middleware for every request: request id, timing, security headers, body-size
limit, structured access log, request metrics, and a JSON 500 that never leaks a stack trace.

It sits outside routing, CORS and exception handlers, so its headers are on every response,
errors included.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fluxora.api.metrics import Metrics

access_log = logging.getLogger("fluxora.api.access")
log = logging.getLogger("fluxora.api")
REQUEST_ID = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cache-control", b"no-store"),
    (b"permissions-policy", b"geolocation=(), camera=(), microphone=()"),
)
# The interactive docs load their script and styles from this service (`DOCS_ASSETS`, shipped in
# fastapi-offline), nothing from elsewhere: their pages may run only their own inline start-up
# script and ReDoc's blob worker. Every other response gets a strict policy.
DOCS_ASSETS = "/docs-assets"
_CSP_API = b"default-src 'none'; frame-ancestors 'none'"
_CSP_DOCS = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'"
)


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's body parsing passes it on."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope["path"]
        csp = _CSP_DOCS if path in ("/docs", "/redoc") else _CSP_API
        status = {"code": 500, "sent": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
                elapsed = (time.perf_counter() - started) * 1000
                extra = [
                    (b"x-request-id", request_id.encode()),
                    (b"server-timing", f"app;dur={elapsed:.2f}".encode()),
                    (b"content-security-policy", csp),
                    *SECURITY_HEADERS,
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        declared = headers.get(b"content-length")
        try:
            if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
                raise BodyTooLarge(self.max_body)
            await self.app(scope, self._limited(receive), send_wrapper)
        except BodyTooLarge as exc:
            if not status["sent"]:
                await _json(send_wrapper, 413, {"detail": exc.detail})
        except Exception:
            log.exception("unhandled error in request %s", request_id)
            if not status["sent"]:
                await _json(send_wrapper, 500, {"detail": "internal error", "request_id": request_id})
        finally:
            self._observe(scope, status["code"], started, request_id)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        return wrapped

    def _observe(self, scope: Scope, code: int, started: float, request_id: str) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        self.metrics.observe_request(method, template, code, elapsed)
        if access_log.isEnabledFor(logging.INFO):
            state: dict[str, Any] = scope.get("state", {})
            client = scope.get("client")
            access_log.info(
                json.dumps(
                    {
                        "event": "request",
                        "request_id": request_id,
                        "method": method,
                        "path": scope["path"],
                        "route": template,
                        "status": code,
                        "duration_ms": round(elapsed * 1000, 3),
                        "client": client[0] if client else None,
                        "consumer": state.get("consumer"),
                    }
                )
            )


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})
