"""ssl.SSLContext factories for mutual TLS 1.3 between certified identities."""

from __future__ import annotations

import ssl
from pathlib import Path

from certified.trust import client_cas_pem, identity_files, server_cas_pem


def server_context(config_dir: str | Path | None = None) -> ssl.SSLContext:
    """TLS 1.3 server: presents id.crt, requires a client certificate signed by a trusted client CA
    (this identity's own CA or one added with ``add-client``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    cert, key = identity_files(config_dir)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cadata=client_cas_pem(config_dir))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(config_dir: str | Path | None = None, *, alias: str | None = None,
                   intro: str | None = None) -> ssl.SSLContext:
    """TLS 1.3 client: presents this identity and verifies servers (including their host name)
    against trusted server CAs.

    With ``alias``, only that service's CA (and our own) is trusted and the introduction registered for
    the alias is presented; ``intro`` names an introduction explicitly.
    """
    if alias is not None and intro is None:
        from certified.trust import service

        intro = service(alias, config_dir).identity
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    cert, key = identity_files(config_dir, intro)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cadata=server_cas_pem(config_dir, alias))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
