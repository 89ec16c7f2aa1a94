"""One connection of this package's own clients to a ``tls+tcp://`` buffer: nng's wire format over ``ssl``.

Any pynng peer can use a ``tls+tcp://`` stream, but nng's bundled TLS engine (mbedTLS) moves about
0.2 GiB/s per connection on this project's machine, while OpenSSL uses the CPU's AES instructions; so
``buffer.client`` (consumers and producers, and through it the streamer and the ``lclstream`` client)
speaks the same bytes over Python's ``ssl`` sockets. Errors say what went wrong: a listener that is
not there yet is ``OSError`` (callers retry, as nng dialers do); a peer that refuses this
certificate, or that this side does not trust, is ``StreamRefused`` (retrying cannot help).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time

from buffer.config import url_host
from buffer.sp_wire import HANDSHAKE_TIMEOUT, Framing, ProtocolError, connect, handshake, recv_exact


class StreamRefused(ConnectionError):
    """The other end refused this connection (certificate, role), or is not the peer this side trusts."""


class SpConnection:
    """A connected, TLS-authenticated, greeted connection; ``send`` and ``recv`` whole messages."""

    def __init__(self, sock: ssl.SSLSocket, url: str) -> None:
        self.sock = sock
        self.url = url
        self.framing = Framing(ipc=False)

    @classmethod
    def open(cls, url: str, context: ssl.SSLContext, own: int, peer: int,
             timeout: float = HANDSHAKE_TIMEOUT) -> SpConnection:
        """Connect, handshake and greet; ``OSError`` if nobody listens yet, ``StreamRefused`` if refused."""
        raw = connect(url, timeout)
        try:
            sock = context.wrap_socket(raw, server_hostname=url_host(url), do_handshake_on_connect=False)
        except BaseException:
            raw.close()
            raise
        try:
            sock.settimeout(timeout)
            try:
                sock.do_handshake()
            except ssl.SSLCertVerificationError as exc:
                raise StreamRefused(f"{url} is not the buffer this certificate authority vouches for: "
                                    f"{exc.verify_message}") from None
            try:
                handshake(sock, own, peer)  # in TLS 1.3 a refusal of our certificate arrives here
            except (ssl.SSLError, ProtocolError, ConnectionError) as exc:
                detail = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else exc
                raise StreamRefused(f"{url} refused this connection ({detail}): the buffer's authority did "
                                    "not sign this certificate, or its role may not connect there (a producer "
                                    "certificate cannot pull, nor a consumer certificate push)") from None
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return cls(sock, url)

    def send(self, data: bytes | bytearray | memoryview) -> None:
        header = self.framing.header(len(data))
        if len(data) <= 64 << 10:
            self.sock.sendall(header + bytes(data))  # one TLS record for small messages
        else:
            self.sock.sendall(header)
            self.sock.sendall(data)

    def recv(self) -> bytearray | None:
        """The next message; None when the connection ended (also in the middle of a message)."""
        header = bytearray(self.framing.size)
        try:
            if not recv_exact(self.sock, memoryview(header)):
                return None
            n = self.framing.length(header)
            try:
                body = bytearray(n)
            except MemoryError:
                raise ProtocolError(f"{self.url} announced a {n}-byte message, more than this process can "
                                    "hold") from None
            if not recv_exact(self.sock, memoryview(body)):
                return None
        except (ssl.SSLEOFError, ConnectionResetError):
            return None
        return body

    def wait_hang_up(self, timeout: float) -> bool:
        """True once the peer closed the connection within ``timeout`` (it never sends to a pusher)."""
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)  # TLS records that are not data (session tickets) are read on
                if self.sock.recv(1) == b"":
                    return True
        except TimeoutError:
            return False
        except (OSError, ValueError):
            return True  # reset, or closed without TLS's close_notify: gone either way
        return False

    def wake(self) -> None:
        """Make a blocked ``recv``/``send`` in another thread return (the owner still closes)."""
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def close(self) -> None:
        self.sock.close()
