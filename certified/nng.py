"""pynng TLS configurations for data streams (``tls+tcp://``) between certified identities.

nng's TLS engine (mbedTLS) cannot use ed25519 keys, so the identity (and its CA) must be P-256:
create it with ``certified init NAME --key-type p256`` in its own configuration directory.
Both sides authenticate: the listener requires a client certificate signed by a trusted client CA,
the dialer verifies the listener against trusted server CAs and ``server_name``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pynng

from certified.errors import CertifiedError
from certified.identity import load
from certified.trust import client_cas_pem, identity_files, server_cas_pem, service


def tls_config(config_dir: str | Path | None = None, *, server: bool, server_name: str | None = None,
               alias: str | None = None) -> pynng.TLSConfig:
    """A ``pynng.TLSConfig`` presenting this identity, with peer certificates required.

    ``server=True`` for the listening side. For the dialing side, ``alias`` limits trust to that
    service's CA and presents its introduction; ``server_name`` (default: the alias URL's host) is the
    name the listener's certificate must carry.
    """
    me = load(config_dir)
    if me.key_type != "p256":
        raise CertifiedError(
            f"identity {me.name!r} uses {me.key_type} keys, which nng's TLS (mbedTLS) cannot use; "
            "create a p256 identity for data streams: certified init NAME --key-type p256 --config OTHER_DIR"
        )
    intro = service(alias, config_dir).identity if alias else None
    cert_path, key_path = identity_files(config_dir, intro)
    common = {"own_cert_string": cert_path.read_text(), "own_key_string": key_path.read_text(),
              "auth_mode": pynng.TLSConfig.AUTH_MODE_REQUIRED}
    if server:
        return pynng.TLSConfig(pynng.TLSConfig.MODE_SERVER, ca_string=client_cas_pem(config_dir), **common)
    if server_name is None and alias is not None:
        server_name = urlsplit(service(alias, config_dir).url).hostname
    return pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT, server_name=server_name,
                           ca_string=server_cas_pem(config_dir, alias), **common)
