"""Who is calling: the identity in a verified client certificate, read from the ASGI TLS extension."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography import x509
from pydantic import BaseModel, ConfigDict

from certified import ca


class Caller(BaseModel):
    """The authenticated client: ``name`` is the common name of its certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    issuer: str
    subject: str
    serial: str
    fingerprint: str


@lru_cache(maxsize=512)
def caller_from_pem(pem: str) -> Caller:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return Caller(name=ca.common_name(cert), issuer=ca.common_name(cert, issuer=True),
                  subject=cert.subject.rfc4514_string(), serial=format(cert.serial_number, "x"),
                  fingerprint=ca.fingerprint(cert))


def caller_from_scope(scope: Mapping[str, Any]) -> Caller | None:
    """The caller of an ASGI request served by ``certified.serve`` (None without a client certificate)."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return caller_from_pem(chain[0]) if chain else None
