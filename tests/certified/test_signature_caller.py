"""HMAC signatures, and the caller dependency when a request carries no client certificate."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import httpx

from certified.signature import SIGNATURE_HEADER, sign, verify
from tests.certified.app import app


def test_sign_is_github_style_hmac_sha256() -> None:
    body = b'{"state":"completed"}'
    expected = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign(body, "k") == expected
    assert SIGNATURE_HEADER == "x-hub-signature-256"


def test_verify_accepts_only_the_right_signature() -> None:
    body = b"payload"
    good = sign(body, "secret")
    assert verify(body, "secret", good)
    assert not verify(body + b" ", "secret", good)
    assert not verify(body, "other", good)
    assert not verify(body, "secret", None)
    assert not verify(body, "secret", good.removeprefix("sha256="))
    assert not verify(body, "secret", "sha256=" + "0" * 64)


def test_caller_dependency_answers_403_without_a_client_certificate() -> None:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # the app itself, with no TLS extension in the scope
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
            return await c.get("/whoami")

    r = asyncio.run(go())
    assert r.status_code == 403
    assert "client certificate" in r.json()["detail"]
