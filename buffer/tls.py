"""TLS for data streams from PEM files: mutual authentication against one CA, and the peer's role.

``tls+tcp://`` sides of the buffer, and this package's own clients, use Python's ``ssl`` (OpenSSL):
handshake failures and the peer's certificate are visible there, so a refused peer is logged with its
address, subject and reason, and each side can admit only one role. OpenSSL also encrypts with the
CPU's AES instructions: measured on this project's machine, nng's bundled mbedTLS moves about
0.2 GiB/s per connection, OpenSSL several times that. ``tls_config`` makes the pynng configuration
for the sides that stay on nng (``wss://``) and for any ordinary pynng peer.

A role is the certificate subject's organizational unit (``OU=producer`` or ``OU=consumer``), as
LCLStream-API writes it into the certificates it makes for each transfer.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pynng

from buffer.config import TLSFiles

PRODUCER, CONSUMER = "producer", "consumer"


class PeerRefused(Exception):
    """A peer failed the TLS handshake or holds a certificate of the wrong role; the text says why."""


def tls_config(files: TLSFiles, *, server: bool, server_name: str | None = None) -> pynng.TLSConfig:
    """A pynng TLS config requiring the peer to present a certificate signed by ``files.ca``.

    ``server`` selects the listening side; a dialling side checks the listener's certificate against
    ``server_name`` (the host of the URL it dials) when given.
    """
    mode = pynng.TLSConfig.MODE_SERVER if server else pynng.TLSConfig.MODE_CLIENT
    return pynng.TLSConfig(
        mode,
        server_name=None if server else server_name,
        ca_string=Path(files.ca).read_text(),
        own_cert_string=Path(files.cert).read_text(),
        own_key_string=Path(files.key).read_text(),
        auth_mode=pynng.TLSConfig.AUTH_MODE_REQUIRED,
    )


def server_context(files: TLSFiles) -> ssl.SSLContext:
    """A listening side: presents ``files.cert``, requires a peer certificate signed by ``files.ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # nng's mbedTLS peers may offer 1.2 only
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(cafile=files.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(ca: str | Path, cert: str | Path | None = None, key: str | Path | None = None) -> ssl.SSLContext:
    """A dialling side: verifies the listener (and its host name) against ``ca``; presents ``cert``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), None if key is None else str(key))
    return ctx


def files_context(files: TLSFiles) -> ssl.SSLContext:
    return client_context(files.ca, files.cert, files.key)


def _attributes(cert: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, value) for rdn in cert.get("subject", ()) for name, value in rdn]


def subject(cert: dict[str, Any] | None) -> str:
    """``CN=alice,OU=consumer,...`` from ``SSLSocket.getpeercert()``."""
    short = {"commonName": "CN", "organizationalUnitName": "OU", "organizationName": "O"}
    return ",".join(f"{short.get(name, name)}={value}" for name, value in _attributes(cert or {}))


def role_of(cert: dict[str, Any] | None) -> str | None:
    units = [value for name, value in _attributes(cert or {}) if name == "organizationalUnitName"]
    return units[0] if len(units) == 1 else None


def reason(exc: BaseException) -> str:
    """One line for a failed handshake (OpenSSL's verify message when there is one)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS handshake failed: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return "TLS handshake did not finish in time"
    return f"TLS handshake failed: {exc}"
