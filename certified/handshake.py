"""Make asyncio TLS servers send the refusal alert to the client and log why a handshake was refused.

asyncio's SSL protocol closes the connection as soon as ``do_handshake`` raises, without sending the
TLS alert OpenSSL has queued, so a refused client sees only "connection closed" instead of "unknown
ca" or "certificate required". ``report_refusals(ctx)`` sets ``ctx.sslobject_class`` (public ssl API)
to an SSLObject whose first failing ``do_handshake`` logs the reason and raises ``SSLWantReadError``
instead: asyncio then flushes the queued alert to the client and waits; the client closes on the
alert (or the handshake timeout fires), and any further call re-raises the original error. No
application data is ever exchanged on a refused connection.
"""

from __future__ import annotations

import json
import logging
import ssl

log = logging.getLogger("certified.serve")


class AlertingSSLObject(ssl.SSLObject):
    _refusal: ssl.SSLError | None = None

    def do_handshake(self) -> None:
        if self._refusal is not None:
            raise self._refusal
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            self._refusal = exc
            log.info(json.dumps({"event": "handshake refused", "reason": exc.reason or str(exc),
                                 "detail": getattr(exc, "verify_message", None)}))
            raise ssl.SSLWantReadError("TLS alert queued; flushing it before closing") from exc


def report_refusals(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.sslobject_class = AlertingSSLObject
    return ctx
