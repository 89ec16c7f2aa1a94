"""Reading messages from a buffer's send URL (the consumer side of a transfer), via ``buffer.client``.

A transfer is reached by its id (``open_transfer``: the data credentials are fetched over the
mutual-TLS control plane, and a protected stream is read with the consumer certificate made for the
caller) or by its URL with the caller's own files (``DataTLS``) for a ``tls+tcp://`` stream.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterator

from pydantic import SecretStr

from buffer.client import Handoff, Message, StreamRefused, StreamTimeout
from buffer.client import messages as buffer_messages
from buffer.config import TLSFiles as DataTLS
from certified.material import ClientTLS
from lclstream_api.client import TransferClient
from lclstream_api.models import DataCredentials

__all__ = ["DataTLS", "Security", "StreamRefused", "StreamTimeout", "messages", "open_transfer"]

log = logging.getLogger("lclstream_api.transport")

Security = DataTLS | ssl.SSLContext | None  # how to open a tls+tcp stream: files, or a ready context

def credentials_context(creds: DataCredentials) -> ssl.SSLContext | None:
    """The TLS context of a protected stream's credentials (None for plain tcp); the key is loaded the way
    certified loads PEM text (through a private folder removed at once)."""
    if not creds.protected:
        return None
    if not (creds.ca_pem and creds.cert_pem and creds.key_pem):
        raise ValueError(f"the credentials of transfer {creds.transfer_id} lack a certificate or key")
    return ClientTLS(cert=creds.cert_pem, key=SecretStr(creds.key_pem), ca=creds.ca_pem,
                     minimum_version=ssl.TLSVersion.TLSv1_2).context()


def unprotected_warning(transfer_id: str, url: str) -> str:
    return (f"warning: transfer {transfer_id} streams over plain tcp ({url}): the data is not encrypted, and "
            "anyone who can reach the buffer's ports can read or inject messages")


def open_transfer(transfer_id: str, client: TransferClient) -> tuple[DataCredentials, ssl.SSLContext | None]:
    """Fetch the caller's data credentials of a transfer: (credentials, TLS context or None for plain tcp).

    A stream that is not protected is logged as a warning (the ``lclstream`` CLI prints it too).
    """
    creds = client.credentials(transfer_id)
    if not creds.protected:
        log.warning("%s", unprotected_warning(creds.transfer_id, creds.url))
    return creds, credentials_context(creds)


def messages(url: str, *, idle_timeout: float = 120.0, tls: Security = None,
             interruptible: bool = False, connections: int = 1) -> Iterator[Message]:
    """Yield each message from the buffer at ``url`` until its end-of-stream marker.

    Raises StreamTimeout when nothing (not even the end) arrives for ``idle_timeout`` seconds, and
    StreamRefused when a tls+tcp buffer refuses the certificate.
    ``interruptible``: receive in a helper thread so that Ctrl-C (KeyboardInterrupt) reaches the
    caller at once; a blocking nng receive would hold it back until the next message or the timeout.
    ``connections``: parallel connections to the buffer (see ``buffer.client.messages``).
    """
    files, context = (None, tls) if isinstance(tls, ssl.SSLContext) else (tls, None)
    source = buffer_messages(url, tls=files, context=context, timeout=idle_timeout, connections=connections)
    return _through_thread(source, url) if interruptible else source


def _through_thread(source: Iterator[Message], url: str, depth: int = 16) -> Iterator[Message]:
    handoff = Handoff(depth)

    def pump() -> None:
        try:
            for message in source:
                if not handoff.put(message):
                    break
            handoff.finish()
        except BaseException as exc:  # handed to the consumer, which raises it
            handoff.put(exc)
        finally:
            source.close()  # type: ignore[attr-defined]  # closes the connections

    threading.Thread(target=pump, name="lclstream-receive", daemon=True).start()
    try:
        yield from handoff.items(None, url)  # the source has its own timeout; this wait is interruptible
    finally:
        handoff.stop.set()
