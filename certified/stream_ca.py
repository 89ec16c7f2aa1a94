"""A certificate authority made for one data stream, and the role certificates it signs.

A service that hands out a data stream (LCLStream-API: one per transfer) makes a P-256 CA for it
(nng's mbedTLS peers need P-256), which only that stream's buffer trusts; a certificate made for one
stream therefore opens no other. Each certificate names its holder (CN) and its role (OU: ``buffer``,
``producer`` or ``consumer``), which the buffer checks per side. The CA's private key stays with the
service that made it (``StreamCA.key_pem``); only certificates and their own keys are handed out.

    ca = StreamCA.create("transfer 0a1b2c")
    server = ca.issue("buffer", "buffer", hosts=["dtn.example.org"])
    reader = ca.issue("alice", "consumer")
    StreamCA.load(ca.cert_pem, ca.key_pem).issue("bob", "consumer")
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from certified.ca import cert_pem, issue, load_cert, make_ca
from certified.keys import PrivateKey, generate, load_private, private_pem

STREAM_DAYS = 8  # a stream lasts hours; its certificates expire soon after, whatever happens to their files
ROLES = ("buffer", "producer", "consumer")


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


class StreamCA:
    """The CA of one data stream: makes role certificates; ``key_pem`` never leaves its service."""

    def __init__(self, key: PrivateKey, cert: x509.Certificate) -> None:
        self.key, self.cert = key, cert

    @classmethod
    def create(cls, name: str, days: int = STREAM_DAYS) -> StreamCA:
        key = generate("p256")
        return cls(key, make_ca(key, name, org="lclstream data stream", days=days))

    @classmethod
    def load(cls, cert: bytes, key: bytes) -> StreamCA:
        return cls(load_private(key), load_cert(cert, "stream CA certificate"))

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        return private_pem(self.key)

    def issue(self, name: str, role: str, hosts: Iterable[str] = (), days: int = STREAM_DAYS) -> Issued:
        """A new P-256 key and its certificate for ``name`` in ``role`` (one of ``ROLES``)."""
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
        key = generate("p256")
        cert = issue(self.key, self.cert, key.public_key(), name, unit=role, hosts=hosts, days=days)
        return Issued(cert_pem(cert), private_pem(key))
