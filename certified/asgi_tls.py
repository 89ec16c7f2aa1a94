"""Put the TLS peer certificate into the ASGI scope, which uvicorn does not do by itself.

Uvicorn's HTTP protocol objects are created once per connection and call ``self.app`` for each
request. The protocol classes here subclass uvicorn's (httptools when installed, else h11) and, in
``connection_made`` (called by asyncio after the TLS handshake), read the peer certificate from the
transport's ``ssl_object`` and wrap ``self.app`` so every scope on that connection carries the ASGI
TLS extension (https://asgi.readthedocs.io/en/latest/specs/tls.html)::

    scope["extensions"]["tls"] = {"client_cert_chain": [PEM], "client_cert_name": RFC 4514 subject,
                                  "client_cert_error": None, "server_cert": None,
                                  "tls_version": 0x0304, "cipher_suite": None}

``certified.serve`` passes one of these classes as uvicorn's ``http=`` protocol.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

_TLS_VERSIONS = {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303}


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension dict for a connection, or None when it is not a TLS connection."""
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain: list[str] = []
    name = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return {"client_cert_chain": chain, "client_cert_name": name, "client_cert_error": None,
            "server_cert": None, "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
            "cipher_suite": None}


def _with_tls(app: Any, tls: dict[str, Any]) -> Any:
    async def app_with_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope.setdefault("extensions", {})["tls"] = tls
        await app(scope, receive, send)

    return app_with_tls


class _PeerCertificate:
    app: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        tls = tls_extension(transport)
        if tls is not None:
            self.app = _with_tls(self.app, tls)


class TLSH11Protocol(_PeerCertificate, H11Protocol):
    """uvicorn's h11 protocol plus the ASGI TLS extension."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class TLSHttpToolsProtocol(_PeerCertificate, HttpToolsProtocol):
        """uvicorn's httptools protocol plus the ASGI TLS extension."""

    PROTOCOL: type[asyncio.Protocol] = TLSHttpToolsProtocol
except ImportError:  # httptools is optional in uvicorn
    PROTOCOL = TLSH11Protocol
