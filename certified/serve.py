"""Run an ASGI app under uvicorn with mutual TLS 1.3, the vouched caller in the scope, and a JSON access log.

Every request passes ``certified.authenticate.Authenticate`` first: a certificate whose name its
issuer may not vouch for is answered 403 before the app sees it. Then
``certified.request_guard.RequestGuard`` (413 over ``max_body`` bytes, 422 for NaN/Infinity), so each
service refuses oversized and non-finite requests the same way.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from uvicorn.importer import ImportFromStringError, import_from_string

from certified.access_log import ACCESS_LOGGER, AccessLog
from certified.asgi_tls import PROTOCOL
from certified.authenticate import Authenticate
from certified.caller import ClientTrust
from certified.errors import CertifiedError
from certified.handshake import report_refusals
from certified.request_guard import DEFAULT_MAX_BODY, RequestGuard
from certified.tls import server_context

log = logging.getLogger("certified.serve")


def parse_listen_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise CertifiedError(f"URL {url!r} has an invalid port: {exc}") from exc
    if parts.scheme != "https" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise CertifiedError(f"listen URL {url!r} must look like https://HOST:PORT (port 0 picks a free port)")
    return parts.hostname, port


def load_app(app: Any) -> Any:
    if not isinstance(app, str):
        return app
    try:
        return import_from_string(app)
    except (ImportFromStringError, ImportError) as exc:
        raise CertifiedError(f"cannot load app {app!r}: {exc} (expected 'package.module:attribute')") from exc


def _json_stderr_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in (ACCESS_LOGGER, "certified.serve"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.propagate = False
        logger.setLevel(level.upper())


def bind(host: str, port: int) -> socket.socket:
    """A listening socket: clients that connect once "listening" is logged wait in its backlog, never refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CertifiedError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that calls ``announce()`` once its sockets really accept connections.

    So a line such as ``{"event": "listening", "pid": ...}`` is a promise a supervisor can wait for: a
    connection made after it reaches this process, not whatever else may hold the port meanwhile.
    """

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._announce()


def listening_line(url: str, **extra: Any) -> str:
    """The JSON line a server logs once it accepts connections at ``url`` (with this process's pid)."""
    return json.dumps({"event": "listening", "url": url, "pid": os.getpid(), **extra})


def serve(app: Any, url: str, config_dir: str | Path | None = None, *, log_level: str = "info",
          max_body: int = DEFAULT_MAX_BODY) -> None:
    """Serve ``app`` (an ASGI app or 'module:attr') at ``url`` (https://HOST:PORT) until SIGINT/SIGTERM.

    TLS 1.3 only; clients must present a certificate signed by a trusted client CA, for a name that CA
    may vouch for (others get 403). Requests carry the ASGI TLS extension and the vouched caller (so
    ``certified.fastapi.caller`` works) and each is logged as one JSON line on stderr by the
    ``certified.access`` logger. One JSON line ``{"event": "listening", "url": ..., "pid": ...}`` comes
    once the server accepts connections (not before), with the actual port when ``url`` asks for 0:
    supervisors wait for it instead of probing the port. Request bodies over ``max_body`` bytes get 413.
    """
    host, port = parse_listen_url(url)
    context = report_refusals(server_context(config_dir))  # fail early on a missing identity, before binding
    guarded = RequestGuard(load_app(app), max_body)  # after authentication: strangers cannot make it read
    asgi_app = AccessLog(Authenticate(guarded, ClientTrust.from_config(config_dir)))
    _json_stderr_logging(log_level)
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        asgi_app, http=PROTOCOL, ws="none", log_level=log_level, access_log=False,
        ssl_context_factory=lambda _config, _default: context,
    )

    def announce() -> None:
        log.info(listening_line(f"https://{shown}:{actual}"))

    try:
        AnnouncingServer(config, announce).run(sockets=[sock])
    finally:
        sock.close()
        log.info(json.dumps({"event": "stopped", "url": f"https://{shown}:{actual}"}))

