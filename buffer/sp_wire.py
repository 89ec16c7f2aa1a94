"""nng's wire format on stream sockets (tcp://, ipc:// and tls+tcp://), for the buffer's socket side.

A connection (over TLS: once the TLS handshake is done) starts with an 8-byte greeting each way: ``00 'S' 'P' 00``, the sender's protocol
number (16 bits, big-endian: Push0 is 0x50, Pull0 is 0x51) and two zero bytes. Then every message is
a header and the body: over tcp the header is the body length as 64 bits big-endian; over ipc it is a
type byte (1) followed by that length. Push0 and Pull0 add nothing to the body, so a buffer that
speaks this format forwards exactly the bytes a producer sent. ``buffer.end_marker`` ends a stream.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import struct
from urllib.parse import urlsplit

PUSH0 = 0x50
PULL0 = 0x51
SOCKET_SCHEMES = ("tcp", "tcp4", "tcp6", "ipc", "tls+tcp")
HANDSHAKE_TIMEOUT = 10.0  # seconds a new connection has to send its greeting

_LENGTH = struct.Struct(">Q")


class EndpointError(Exception):
    """A socket could not listen on or dial its URL (address in use, bad address, ...)."""


class ProtocolError(Exception):
    """The peer does not speak the expected side of nng's pipeline protocol."""


def is_socket_url(url: str) -> bool:
    """True for URLs the socket side serves itself (TCP, TLS over TCP and UNIX sockets)."""
    return url.partition("://")[0] in SOCKET_SCHEMES


def greeting(protocol: int) -> bytes:
    return b"\x00SP\x00" + protocol.to_bytes(2, "big") + b"\x00\x00"


class Framing:
    """Message headers of one transport."""

    def __init__(self, ipc: bool) -> None:
        self.ipc = ipc
        self.size = 9 if ipc else 8

    def header(self, nbytes: int) -> bytes:
        return (b"\x01" if self.ipc else b"") + _LENGTH.pack(nbytes)

    def length(self, header: bytes | bytearray) -> int:
        if self.ipc and header[0] != 1:
            raise ProtocolError(f"unexpected ipc message type {header[0]}")
        return _LENGTH.unpack_from(header, self.size - 8)[0]


def framing(url: str) -> Framing:
    return Framing(ipc=url.startswith("ipc://"))


def recv_exact(sock: socket.socket, view: memoryview) -> bool:
    """Fill ``view`` from ``sock``; False if the connection ended first."""
    got, want = 0, len(view)
    while got < want:
        n = sock.recv_into(view[got:])
        if n == 0:
            return False
        got += n
    return True


def handshake(sock: socket.socket, own: int, peer: int) -> None:
    """Exchange greetings; ProtocolError unless the peer is the expected protocol."""
    sock.settimeout(HANDSHAKE_TIMEOUT)
    try:
        sock.sendall(greeting(own))
        got = bytearray(8)
        if not recv_exact(sock, memoryview(got)):
            raise ProtocolError("the peer closed the connection before its greeting")
    except TimeoutError:
        raise ProtocolError(f"no greeting within {HANDSHAKE_TIMEOUT:g} seconds") from None
    finally:
        sock.settimeout(None)
    if got[:4] != b"\x00SP\x00" or got[6:] != b"\x00\x00":
        raise ProtocolError("the peer is not an nng socket")
    theirs = int.from_bytes(got[4:6], "big")
    if theirs != peer:
        raise ProtocolError(f"the peer speaks protocol 0x{theirs:x}, expected 0x{peer:x}")


def _tcp_address(url: str, *, listening: bool) -> tuple[socket.AddressFamily, tuple]:
    parts = urlsplit(url)
    scheme, host, port = parts.scheme, parts.hostname, parts.port
    family = {"tcp4": socket.AF_INET, "tcp6": socket.AF_INET6}.get(scheme, socket.AF_UNSPEC)
    if host in (None, "", "*"):
        if not listening:
            raise EndpointError(f"cannot dial {url}: no host")
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EndpointError(f"cannot resolve {host!r} of {url}: {exc.strerror}") from None
    fam, _, _, _, addr = infos[0]
    return fam, addr


def _tune(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _remove_stale_ipc(path: str, url: str, role: str) -> None:
    """nng removes a UNIX socket file nobody listens on any more; do the same, refuse a live one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise EndpointError(f"cannot listen on {role} URL {url}: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)
        return
    finally:
        probe.close()
    raise EndpointError(f"cannot listen on {role} URL {url}: the address is already in use")


def listen(url: str, role: str) -> socket.socket:
    """A listening socket for a tcp:// or ipc:// URL; EndpointError with one clear sentence if impossible."""
    if url.startswith("ipc://"):
        path = url.removeprefix("ipc://")
        _remove_stale_ipc(path, url, role)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr: object = path
    else:
        family, addr = _tcp_address(url, listening=True)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise EndpointError(f"cannot listen on {role} URL {url}: the address is already in use") from None
        raise EndpointError(f"cannot listen on {role} URL {url}: {exc.strerror}") from None
    sock.settimeout(0.25)  # accept loops notice closing within this
    return sock


def connect(url: str, timeout: float = 5.0) -> socket.socket:
    """A connected socket (OSError if the peer is not there yet: callers retry, as nng dialers do)."""
    if url.startswith("ipc://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr: object = url.removeprefix("ipc://")
    else:
        family, addr = _tcp_address(url, listening=False)
        sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(addr)
    except OSError:
        sock.close()
        raise
    sock.settimeout(None)
    _tune(sock)
    return sock


def accepted(sock: socket.socket) -> socket.socket:
    sock.settimeout(None)
    _tune(sock)
    return sock


def unlink_ipc(url: str) -> None:
    if url.startswith("ipc://"):
        with contextlib.suppress(OSError):
            os.unlink(url.removeprefix("ipc://"))
