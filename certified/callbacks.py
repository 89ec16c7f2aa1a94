"""Signed state-change callbacks: POST JSON with an HMAC signature, retrying a bounded number of times, never raising."""

from __future__ import annotations

import json
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from certified.signature import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes posted (and signed): compact JSON with sorted keys."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


@dataclass(frozen=True)
class Delivery:
    """How one callback went: ``ok`` on a 2xx answer; ``attempts`` made; ``problem`` the last failure."""

    ok: bool
    attempts: int
    problem: str = ""


def deliver(url: str, payload: dict[str, Any], secret: str | None, *, attempts: int = 5,
            backoff: float = 0.2, timeout: float = 5.0, verify: ssl.SSLContext | bool = True) -> Delivery:
    """POST ``payload`` as JSON to ``url`` with ``x-hub-signature-256`` when ``secret`` is set.

    Retries connection errors and 408/425/429/5xx answers up to ``attempts`` times, sleeping
    ``backoff * 2**n`` between tries; other 4xx answers are final. Never raises (a callback must not
    break the state change it reports); a failure is logged and described in the result.
    """
    body = encode(payload)
    headers = {"content-type": "application/json"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    problem = "no attempt made"
    attempt = 0
    for attempt in range(max(1, attempts)):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=timeout, verify=verify)
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            continue
        except Exception as exc:  # noqa: BLE001 - a callback must never raise into its caller
            problem = f"{type(exc).__name__}: {exc}"
            break
        if response.is_success:
            return Delivery(True, attempt + 1)
        problem = f"HTTP {response.status_code}"
        if response.status_code not in RETRY_STATUSES:
            break
    log.warning("callback to %s failed after %d attempt(s): %s", url, attempt + 1, problem)
    return Delivery(False, attempt + 1, problem[:500])


def post_signed(url: str, payload: dict[str, Any], secret: str | None, **options: Any) -> bool:
    """``deliver`` that answers only whether it worked (True on a 2xx answer)."""
    return deliver(url, payload, secret, **options).ok
