"""Who may connect to one side of a buffer: the TLS handshake, the certificate's role, nng's greeting.

A connection is admitted before it can count as a producer or consumer or deliver a byte: a
``tls+tcp://`` side completes the TLS handshake (the peer's certificate must be signed by the
buffer's CA), then, with ``require_roles``, checks that the certificate carries this side's role
(only ``producer`` certificates may push, only ``consumer`` ones pull), then exchanges nng's
greeting. Anything else raises ``PeerRefused`` with a reason, which the side logs in one line with
the peer's address and certificate subject.
"""

from __future__ import annotations

import contextlib
import socket
import ssl

from buffer.config import BufferConfig, url_host
from buffer.sp_wire import HANDSHAKE_TIMEOUT, ProtocolError, handshake
from buffer.tls import PeerRefused, files_context, reason, role_of, server_context, subject


def address(sock: socket.socket) -> str:
    """``host:port`` of the peer (``[v6]:port``; ``local`` over a UNIX socket)."""
    try:
        peer = sock.getpeername()
    except OSError:
        return "an unknown address"
    if isinstance(peer, tuple):
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "local"


class Admission:
    """Admits peers on one side (``role`` "producer" on --recv, "consumer" on --send)."""

    def __init__(self, cfg: BufferConfig, url: str, *, dial: bool, role: str, own: int, peer: int) -> None:
        self.role, self.own, self.peer, self.dial = role, own, peer, dial
        self.require_role = cfg.require_roles
        self.server_name = url_host(url) if dial else None
        self.context: ssl.SSLContext | None = None
        if url.startswith("tls+tcp://"):
            assert cfg.tls is not None  # the config's validator makes sure
            self.context = files_context(cfg.tls) if dial else server_context(cfg.tls)

    def wrap(self, sock: socket.socket) -> socket.socket:
        """The socket to serve (TLS-wrapped without I/O yet, so it can be tracked and woken at once)."""
        if self.context is None:
            return sock
        return self.context.wrap_socket(sock, server_side=not self.dial, server_hostname=self.server_name,
                                        do_handshake_on_connect=False)

    def admit(self, sock: socket.socket) -> str:
        """Handshake, role and greeting; returns how to name the peer in logs, or raises PeerRefused."""
        who = address(sock)
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(HANDSHAKE_TIMEOUT)
            try:
                sock.do_handshake()
            except (OSError, ValueError) as exc:
                raise PeerRefused(f"{who}: {reason(exc)}") from None
            finally:
                with contextlib.suppress(OSError):
                    sock.settimeout(None)
            cert = sock.getpeercert()
            who = f"{who} ({subject(cert)})"
            if self.require_role and not self.dial:
                role = role_of(cert)
                if role != self.role:
                    raise PeerRefused(f"{who}: its certificate's role is {role or 'missing'}; "
                                      f"only {self.role} certificates may connect here")
        try:
            handshake(sock, self.own, self.peer)
        except (ProtocolError, OSError) as exc:
            raise PeerRefused(f"{who}: {exc}") from None
        return who
