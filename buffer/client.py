"""Library API for both ends of a buffer.

Consumers::

    for payload in messages("tcp://dtn:5556", timeout=60):
        ...                      # stops cleanly at the buffer's end marker

Producers::

    with Producer("tcp://dtn:5555") as p:
        p.send(b"...")           # blocks while the buffer is full (backpressure)
    # leaving the block sends the end marker and waits until the buffer took everything

Both accept ``tls=TLSFiles(cert=..., key=..., ca=...)`` for ``tls+tcp://`` URLs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import TracebackType

import pynng

from buffer.config import TLSFiles, check_nng_url, url_host
from buffer.nng_side import msg_len
from buffer.tls import tls_config

NO_REDIAL_MS = 3_600_000


class StreamTimeout(TimeoutError):
    """Nothing arrived (or could be sent) within the timeout."""


def _socket(cls: type[pynng.Socket], url: str, tls: TLSFiles | None) -> pynng.Socket:
    check_nng_url(url)
    sock = cls(recv_max_size=0) if cls is pynng.Pull0 else cls()
    if url.startswith("tls+tcp://"):
        if tls is None:
            sock.close()
            raise ValueError(f"{url} is a TLS URL: pass tls=TLSFiles(cert=..., key=..., ca=...)")
        sock.tls_config = tls_config(tls, server=False, server_name=url_host(url))
    return sock


class _Connections:
    """The connections one consumer socket has made, and which of them delivered their end marker.

    Pipes are recorded before nng starts them (pre-connect), so none can deliver a message unseen. A
    buffer sends its end markers only once everything was handed out, so when every connection made
    so far has ended, the stream is complete; a connection lost without its marker stops counting.
    """

    def __init__(self, sock: pynng.Socket) -> None:
        self._lock = threading.Lock()
        self._live: set[int] = set()
        self._ended: set[int] = set()
        sock.add_pre_pipe_connect_cb(self._added)
        sock.add_post_pipe_remove_cb(self._removed)

    def _added(self, pipe: pynng.Pipe) -> None:
        with self._lock:
            self._live.add(pipe.id)

    def _removed(self, pipe: pynng.Pipe) -> None:
        with self._lock:
            self._live.discard(pipe.id)

    def end(self, pipe: pynng.Pipe) -> bool:
        """``pipe`` delivered its end marker; True once no connection is left to wait for."""
        with self._lock:
            self._ended.add(pipe.id)
            self._live.discard(pipe.id)
            return not self._live


def messages(url: str, *, tls: TLSFiles | None = None, timeout: float | None = None,
             connections: int = 1) -> Iterator[bytes]:
    """Yield each message the buffer at ``url`` sends this consumer, until the end of the stream.

    ``timeout`` bounds the wait for each message (None waits for ever: the buffer may not be up yet,
    or producers may join late); ``StreamTimeout`` is raised when it passes. ``connections`` > 1 opens
    that many connections to the buffer: each carries whole messages, and nng receives them on
    separate threads, so one large message does not hold up the next (the buffer counts each
    connection as a consumer). The connections are closed on the end marker, when the caller stops
    iterating, or on error.
    """
    if connections < 1:
        raise ValueError(f"connections must be at least 1, got {connections}")
    sock = _socket(pynng.Pull0, url, tls)
    try:
        if timeout is not None:
            sock.recv_timeout = int(timeout * 1000)
        ledger = _Connections(sock)
        for _ in range(connections):
            sock.dial(url, block=False)
        while True:
            try:
                msg = sock.recv_msg()
            except pynng.Timeout:
                raise StreamTimeout(f"no message from {url} within {timeout:g} seconds") from None
            if msg_len(msg) == 0:
                pipe = msg.pipe
                if ledger.end(pipe):
                    return
                pipe.dialer.close()  # this connection is done: do not let nng dial it again
                continue
            yield msg.bytes
    finally:
        sock.close()


class Producer:
    """Pushes messages into a buffer; ``close()`` ends this producer's stream explicitly.

    Closing sends an empty end marker and waits (up to ``close_timeout``) for the buffer to hang up,
    which it does after taking every message sent before the marker: nothing is lost in nng's queues.
    """

    def __init__(self, url: str, *, tls: TLSFiles | None = None, send_timeout: float | None = None,
                 close_timeout: float = 60.0) -> None:
        self.url = url
        self.close_timeout = close_timeout
        self.messages_sent = 0
        self.bytes_sent = 0
        self._hung_up = threading.Event()
        self._sock = _socket(pynng.Push0, url, tls)
        if send_timeout is not None:
            self._sock.send_timeout = int(send_timeout * 1000)
        self._sock.add_post_pipe_remove_cb(lambda _pipe: self._hung_up.set())
        self._sock.dial(url, block=False)
        self._closed = False
        self._confirmed = False

    def send(self, data: bytes | memoryview) -> None:
        if len(data) == 0:
            raise ValueError("empty messages are end markers and cannot be sent as data")
        try:
            self._sock.send(data)
        except pynng.Timeout:
            raise StreamTimeout(f"the buffer at {self.url} took nothing within the send timeout") from None
        self.messages_sent += 1
        self.bytes_sent += len(data)

    def close(self) -> bool:
        """Send the end marker and wait for the buffer to take everything; False if it did not confirm."""
        if self._closed:
            return self._confirmed
        self._closed = True
        confirmed = False
        try:
            self._hung_up.clear()
            # once the buffer hangs up, do not dial it again (it would count a new producer)
            self._sock.reconnect_time_min = self._sock.reconnect_time_max = NO_REDIAL_MS
            self._sock.send_timeout = int(self.close_timeout * 1000)
            self._sock.send(b"")
            deadline = time.monotonic() + self.close_timeout
            confirmed = self._hung_up.wait(max(deadline - time.monotonic(), 0))
        except pynng.Timeout:
            pass
        finally:
            self._sock.close()
        self._confirmed = confirmed
        return confirmed

    def abort(self) -> None:
        """Close without an end marker (the buffer sees this producer vanish, as if it crashed)."""
        self._closed = True
        self._sock.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
