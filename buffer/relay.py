"""Moving one message from a producer's connection straight into a consumer's, without storing it.

Between two plain sockets the message goes through a pipe by ``splice(2)``: the kernel passes page
references and the buffer never touches the bytes. When either side is TLS the bytes must be
decrypted or encrypted on the way, so they are read into one reusable buffer and written out again
(one copy, no allocation per message). Either way the producer's thread does it, and a message that
a free consumer takes never waits in the buffer's memory.
"""

from __future__ import annotations

import fcntl
import os
import socket
import ssl
from collections.abc import Callable
from enum import Enum

CAN_SPLICE = hasattr(os, "splice")  # Linux
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032
PIPE_SIZE = 1 << 20  # the largest pipe an unprivileged process may ask for by default (pipe-max-size)
COPY_CHUNK = 256 << 10  # bytes read before they are written on, when a TLS side needs a copy


class Relayed(Enum):
    DELIVERED = "delivered"
    NOT_STARTED = "not_started"  # the consumer was gone before anything was written
    CONSUMER_LOST = "consumer_lost"  # the consumer went away mid-message; the rest was read and dropped
    PRODUCER_LOST = "producer_lost"  # the producer went away mid-message; the consumer's stream is broken


def send_more(sock: socket.socket, data: bytes) -> None:
    """Send a header that the message body follows at once (the kernel may wait for it over plain TCP)."""
    if isinstance(sock, ssl.SSLSocket):
        sock.sendall(data)
    else:
        sock.sendall(data, socket.MSG_MORE)


class Conduit:
    """A pipe through which messages are spliced from a producer's socket into a consumer's socket."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_CLOEXEC)
        try:
            self.size = fcntl.fcntl(self.w, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # over the user's pipe allowance: the default size still works, in smaller steps
            self.size = fcntl.fcntl(self.w, F_GETPIPE_SZ)

    def _discard(self, nbytes: int) -> None:
        while nbytes > 0:
            nbytes -= len(os.read(self.r, min(nbytes, self.size)))

    def relay(self, src: socket.socket, dst: socket.socket, header: bytes, nbytes: int,
              progress: Callable[[], None]) -> Relayed:
        try:
            dst.sendall(header, socket.MSG_MORE)
        except OSError:
            return Relayed.NOT_STARTED
        src_fd, dst_fd = src.fileno(), dst.fileno()
        left, consumer_ok = nbytes, True
        while left > 0:
            try:
                got = os.splice(src_fd, self.w, min(left, self.size))
            except OSError:
                got = 0
            if got == 0:
                return Relayed.PRODUCER_LOST
            left -= got
            out = got
            if consumer_ok:
                try:
                    while out > 0:
                        out -= os.splice(self.r, dst_fd, out)
                        progress()
                except OSError:
                    consumer_ok = False
            self._discard(out)  # nothing left, unless the consumer went away
        return Relayed.DELIVERED if consumer_ok else Relayed.CONSUMER_LOST

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class Copier:
    """Reads a message from one connection and writes it to another through one reusable buffer."""

    def __init__(self) -> None:
        self.buffer = bytearray(COPY_CHUNK)

    def relay(self, src: socket.socket, dst: socket.socket, header: bytes, nbytes: int,
              progress: Callable[[], None]) -> Relayed:
        try:
            dst.sendall(header)
        except OSError:
            return Relayed.NOT_STARTED
        view = memoryview(self.buffer)
        left, consumer_ok = nbytes, True
        while left > 0:
            want, filled = min(left, len(view)), 0
            while filled < want:  # TLS gives one record (16 KiB) per read: gather some before writing
                try:
                    got = src.recv_into(view[filled:want])
                except OSError:
                    got = 0
                if got == 0:
                    return Relayed.PRODUCER_LOST
                filled += got
            left -= filled
            if consumer_ok:
                try:
                    dst.sendall(view[:filled])
                    progress()
                except OSError:
                    consumer_ok = False
        return Relayed.DELIVERED if consumer_ok else Relayed.CONSUMER_LOST


class Relay:
    """The way one producer connection hands messages to consumer connections (made on first use)."""

    def __init__(self, src: socket.socket) -> None:
        self.src = src
        self._conduit: Conduit | None = None
        self._copier: Copier | None = None

    def _plain(self, sock: socket.socket) -> bool:
        return CAN_SPLICE and not isinstance(sock, ssl.SSLSocket)

    def send(self, dst: socket.socket, header: bytes, nbytes: int, body: bytes | bytearray | None,
             progress: Callable[[], None]) -> Relayed:
        """Send ``header`` and the message: ``body`` when it was read already, else the next ``nbytes``
        bytes of the producer's connection."""
        if body is not None:
            try:
                dst.sendall(header + bytes(body))
            except OSError:
                return Relayed.NOT_STARTED  # a few bytes only: the consumer is gone, another one takes it
            progress()
            return Relayed.DELIVERED
        if self._plain(self.src) and self._plain(dst):
            if self._conduit is None:
                self._conduit = Conduit()
            return self._conduit.relay(self.src, dst, header, nbytes, progress)
        if self._copier is None:
            self._copier = Copier()
        return self._copier.relay(self.src, dst, header, nbytes, progress)

    def close(self) -> None:
        if self._conduit is not None:
            self._conduit.close()
