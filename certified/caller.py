"""Who is calling: the name in a verified client certificate, and the trust entry that vouched for it.

TLS has already checked that a trusted CA signed the client's certificate; ``ClientTrust.identify``
finds which one, and accepts the certificate's name only if that entry may vouch for it
(``certified.names``). ``certified.serve`` does this once per request and puts the ``Caller`` in the
ASGI scope; ``caller_from_scope`` reads it back. Admin rights come from the trust entry, never from
the name alone: ``Caller.is_admin(admins)`` holds only for names the server's own CA signed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, Field

from certified import ca, names
from certified.trust import ClientAuthority, client_authorities

SCOPE_KEY = "certified.caller"


class Caller(BaseModel):
    """The authenticated client: ``name`` is its certificate's common name, vouched for by ``vouched_by``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    issuer: str
    subject: str
    serial: str
    fingerprint: str
    vouched_by: str = Field(description="trust entry that vouched for the name: 'own CA' or a client CA's name")
    own_ca: bool = Field(description="the server's own CA signed it (only such names may be admins)")

    def is_admin(self, admins: Iterable[str]) -> bool:
        """Admin rights: a name listed in ``admins`` that the server's own CA vouched for."""
        return self.own_ca and self.name in set(admins)


class CallerRefused(Exception):
    """A verified certificate whose name its issuer may not vouch for; ``reason`` says why."""

    def __init__(self, reason: str, subject: str, issuer: str, vouched_by: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.subject = subject
        self.issuer = issuer
        self.vouched_by = vouched_by


def strict_common_name(cert: x509.Certificate) -> str | None:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


class ClientTrust:
    """The client CAs a server accepts, and the names each may vouch for (results cached per certificate)."""

    CACHE_SIZE = 1024

    def __init__(self, authorities: list[ClientAuthority]) -> None:
        self.authorities = authorities
        self._cache: OrderedDict[str, Caller | CallerRefused] = OrderedDict()

    @classmethod
    def from_config(cls, config_dir: str | Path | None = None) -> ClientTrust:
        return cls(client_authorities(config_dir))

    def identify(self, pem: str) -> Caller:
        """The caller a verified certificate authenticates, or ``CallerRefused``."""
        found = self._cache.get(pem)
        if found is None:
            found = self._identify(pem)
            self._cache[pem] = found
            if len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        if isinstance(found, CallerRefused):
            raise found
        return found

    def _identify(self, pem: str) -> Caller | CallerRefused:
        cert = x509.load_pem_x509_certificate(pem.encode())
        subject, issuer = cert.subject.rfc4514_string(), ca.common_name(cert, issuer=True)
        authority = next((a for a in self.authorities if a.signed(cert)), None)
        if authority is None:
            return CallerRefused("issuer is not in this server's trust list", subject, issuer, None)
        name = strict_common_name(cert)
        why = names.refusal(authority.trusted_as, name)
        if why is not None:
            return CallerRefused(why, subject, issuer, authority.label)
        return Caller(name=str(name), issuer=issuer, subject=subject, serial=format(cert.serial_number, "x"),
                      fingerprint=ca.fingerprint(cert), vouched_by=authority.label,
                      own_ca=authority.trusted_as is None)


def peer_pem(scope: Mapping[str, Any]) -> str | None:
    """The client certificate (PEM) of a request, from the ASGI TLS extension (``certified.asgi_tls``)."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return chain[0] if chain else None


def caller_from_scope(scope: Mapping[str, Any]) -> Caller | None:
    """The caller of an ASGI request served by ``certified.serve`` (None when nobody was authenticated)."""
    who = scope.get(SCOPE_KEY)
    return who if isinstance(who, Caller) else None
