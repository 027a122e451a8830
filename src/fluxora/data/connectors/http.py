"""One careful JSON GET: explicit timeouts, retries with exponential backoff on transient failures, clear errors.

Transient: connection errors, timeouts, 429 and 5xx (honouring `Retry-After` in seconds). Anything
else (400, 401, 403, 404) fails at once with the provider's own message, which usually says what
to fix (a bad variable name, an invalid API key).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from fluxora.data.errors import ConnectorError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_s: float = 0.5  # first wait; doubles each retry
    max_wait_s: float = 30.0
    timeout_s: float = 20.0


DEFAULT_RETRY = RetryPolicy()


def get_json(
    client: httpx.Client,
    url: str,
    params: Any,
    provider: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    redact: tuple[str, ...] = (),
) -> Any:
    """GET `url` and return its JSON body, retrying transient failures per `policy`."""
    last = ""
    for attempt in range(1, policy.attempts + 1):
        wait = min(policy.backoff_s * 2 ** (attempt - 1), policy.max_wait_s)
        try:
            response = client.get(url, params=params, timeout=policy.timeout_s)
        except httpx.TimeoutException:
            last = f"timed out after {policy.timeout_s:g} s"
        except httpx.TransportError as exc:
            last = f"connection failed ({_redact(str(exc), redact) or type(exc).__name__})"
        else:
            if response.status_code < 400:
                try:
                    return response.json()
                except ValueError:
                    status = response.status_code
                    raise ConnectorError(f"{provider}: the response is not JSON (HTTP {status})") from None
            message = _error_message(response)
            if response.status_code not in RETRY_STATUS:
                raise ConnectorError(f"{provider}: HTTP {response.status_code}: {message}")
            last = f"HTTP {response.status_code}: {message}"
            wait = min(_retry_after(response) or wait, policy.max_wait_s)
        if attempt < policy.attempts:
            sleep(wait)
    raise ConnectorError(f"{provider}: giving up after {policy.attempts} attempts: {last}")


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err.get("code") or err)
        if "reason" in body:
            return str(body["reason"])
        if isinstance(err, str):
            return err
    return str(body)[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
