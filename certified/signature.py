"""HMAC-SHA256 signatures of callback bodies, GitHub-webhook style ("sha256=<hex>")."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "x-hub-signature-256"
PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The header value for ``body``: ``sha256=`` followed by the hex HMAC-SHA256 keyed by ``secret``."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret`` (constant-time comparison)."""
    if not header or not header.startswith(PREFIX):
        return False
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().encode())
