"""pynng TLS configurations from PEM files: mutual authentication against one CA."""

from __future__ import annotations

from pathlib import Path

import pynng

from buffer.config import TLSFiles


def tls_config(files: TLSFiles, *, server: bool, server_name: str | None = None) -> pynng.TLSConfig:
    """A TLS config requiring the peer to present a certificate signed by ``files.ca``.

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
