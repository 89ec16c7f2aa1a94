"""Library API for both ends of a buffer.

Consumers::

    for payload in messages("tls+tcp://dtn:5556", tls=TLSFiles(cert=..., key=..., ca=...), timeout=60):
        ...                      # stops cleanly at the buffer's end marker (buffer.end_marker)

Producers::

    with Producer("tcp://dtn:5555") as p:
        p.send(b"...")           # blocks while the buffer is full (backpressure)
    # leaving the block sends the end marker and waits until the buffer took everything

``tcp://``, ``ipc://``, ``ws://`` URLs go through pynng. ``tls+tcp://`` URLs take ``tls=TLSFiles(...)``
(or ``context=`` an ``ssl.SSLContext``) and go through Python's ``ssl`` (``sp_client``: same bytes on
the wire, OpenSSL's speed); a buffer that refuses the certificate raises ``StreamRefused`` at once.
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import pynng

from buffer.config import TLSFiles, check_nng_url, url_host
from buffer.end_marker import END_MARKER, is_end
from buffer.nng_side import message_is_end
from buffer.sp_client import SpConnection, StreamRefused
from buffer.sp_wire import PULL0, PUSH0
from buffer.tls import files_context, tls_config

NO_REDIAL_MS = 3_600_000
REDIAL = 0.1  # seconds between dials while nobody listens yet (nng's default); loopback refusals are cheap
POLL = 0.2  # seconds between checks of a stop flag while waiting

__all__ = ["Handoff", "Producer", "StreamRefused", "StreamTimeout", "messages"]

Message = bytes | bytearray


class StreamTimeout(TimeoutError):
    """Nothing arrived (or could be sent) within the timeout."""


def _is_tls(url: str) -> bool:
    return url.startswith("tls+tcp://")


def _context(url: str, tls: TLSFiles | None, context: ssl.SSLContext | None) -> ssl.SSLContext:
    if context is not None:
        return context
    if tls is None:
        raise ValueError(f"{url} is a TLS URL: pass tls=TLSFiles(cert=..., key=..., ca=...)")
    return files_context(tls)


def _socket(cls: type[pynng.Socket], url: str, tls: TLSFiles | None) -> pynng.Socket:
    sock = cls(recv_max_size=0) if cls is pynng.Pull0 else cls()
    if tls is not None and url.startswith("wss://"):
        sock.tls_config = tls_config(tls, server=False, server_name=url_host(url))
    return sock


def messages(url: str, *, tls: TLSFiles | None = None, context: ssl.SSLContext | None = None,
             timeout: float | None = None, connections: int = 1) -> Iterator[Message]:
    """Yield each message the buffer at ``url`` sends this consumer, until the end of the stream.

    ``timeout`` bounds the wait for each message (None waits for ever: the buffer may not be up yet,
    or producers may join late); ``StreamTimeout`` is raised when it passes. ``connections`` > 1 opens
    that many connections to the buffer: each carries whole messages, received on separate threads,
    so one large message does not hold up the next (the buffer counts each connection as a
    consumer). The connections are closed on the end marker, when the caller stops iterating, or on
    error. Messages are ``bytes`` (``bytearray`` over tls+tcp: no copy is made to freeze them).
    """
    check_nng_url(url)
    if connections < 1:
        raise ValueError(f"connections must be at least 1, got {connections}")
    if _is_tls(url):
        return _tls_messages(url, _context(url, tls, context), timeout, connections)
    return _nng_messages(url, tls, timeout, connections)


class _Connections:
    """The connections one consumer has made, and which of them delivered their end marker.

    A buffer sends its end markers only once everything was handed out, so when every connection
    made so far has ended, the stream is complete; a connection lost without its marker stops
    counting (and is dialled again).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[int] = set()

    def added(self, key: int) -> None:
        with self._lock:
            self._live.add(key)

    def lost(self, key: int) -> None:
        with self._lock:
            self._live.discard(key)

    def end(self, key: int) -> bool:
        """``key`` delivered its end marker; True once no connection is left to wait for."""
        with self._lock:
            self._live.discard(key)
            return not self._live


def _nng_messages(url: str, tls: TLSFiles | None, timeout: float | None, connections: int) -> Iterator[bytes]:
    sock = _socket(pynng.Pull0, url, tls)
    try:
        if timeout is not None:
            sock.recv_timeout = int(timeout * 1000)
        ledger = _Connections()
        # pipes are recorded before nng starts them (pre-connect), so none can deliver a message unseen
        sock.add_pre_pipe_connect_cb(lambda pipe: ledger.added(pipe.id))
        sock.add_post_pipe_remove_cb(lambda pipe: ledger.lost(pipe.id))
        for _ in range(connections):
            sock.dial(url, block=False)
        while True:
            try:
                msg = sock.recv_msg()
            except pynng.Timeout:
                raise StreamTimeout(f"no message from {url} within {timeout:g} seconds") from None
            if message_is_end(msg):
                pipe = msg.pipe
                if ledger.end(pipe.id):
                    return
                pipe.dialer.close()  # this connection is done: do not let nng dial it again
                continue
            yield msg.bytes
    finally:
        sock.close()


class Handoff:
    """Items passed from receiving threads to the consuming one through a bounded queue.

    Producing threads ``put`` items (blocking while the consumer is behind, until ``stop``), then
    ``finish()`` or put an exception; ``items()`` yields them and raises that exception.
    """

    _END = object()

    def __init__(self, depth: int) -> None:
        self.queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()

    def put(self, item: object) -> bool:
        """Queue ``item``; False (dropped) once the consumer stopped."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=POLL)
                return True
            except queue.Full:
                continue
        return False

    def finish(self) -> None:
        self.put(self._END)

    def items(self, timeout: float | None, url: str) -> Iterator[Any]:
        """Each item until ``finish``; StreamTimeout when none comes within ``timeout`` seconds."""
        while True:
            try:
                item = self.queue.get(timeout=timeout)
            except queue.Empty:
                raise StreamTimeout(f"no message from {url} within {timeout:g} seconds") from None
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class _Receivers:
    """Threads receiving over TLS connections into one handoff (the consumer's pace holds them)."""

    def __init__(self, url: str, context: ssl.SSLContext, connections: int) -> None:
        self.url, self.context = url, context
        self.handoff = Handoff(connections)
        self.stop = self.handoff.stop
        self.ledger = _Connections()
        self._lock = threading.Lock()
        self._open: set[SpConnection] = set()
        self.threads = [threading.Thread(target=self._link, name=f"receive-{i}", daemon=True)
                        for i in range(connections)]
        for thread in self.threads:
            thread.start()

    def _connect(self) -> SpConnection | None:
        while not self.stop.is_set():
            try:
                conn = SpConnection.open(self.url, self.context, PULL0, PUSH0)
            except StreamRefused as exc:
                self.handoff.put(exc)
                return None
            except OSError:
                self.stop.wait(REDIAL)  # not listening yet: dial again, as nng does
                continue
            with self._lock:
                if self.stop.is_set():
                    conn.close()
                    return None
                self._open.add(conn)
            self.ledger.added(id(conn))
            return conn
        return None

    def _link(self) -> None:
        while (conn := self._connect()) is not None:
            try:
                while (message := conn.recv()) is not None:
                    if is_end(message):
                        if self.ledger.end(id(conn)):
                            self.handoff.finish()
                        return
                    if not self.handoff.put(message):
                        return
                self.ledger.lost(id(conn))  # lost without its end marker: stops counting, dial again
            except Exception as exc:  # handed to the consumer, which raises it
                self.handoff.put(exc)
                return
            finally:
                with self._lock:
                    self._open.discard(conn)
                conn.close()

    def close(self) -> None:
        self.stop.set()
        with self._lock:
            for conn in self._open:
                conn.wake()
        for thread in self.threads:
            thread.join(5)


def _tls_messages(url: str, context: ssl.SSLContext, timeout: float | None,
                  connections: int) -> Iterator[Message]:
    receivers = _Receivers(url, context, connections)
    try:
        yield from receivers.handoff.items(timeout, url)
    finally:
        receivers.close()


class _NngPush:
    """Producer link through pynng (tcp, ipc, ws): nng dials in the background and redials."""

    def __init__(self, url: str, tls: TLSFiles | None, send_timeout: float | None) -> None:
        self.url = url
        self.hung_up = threading.Event()
        self.connected = threading.Event()
        self.sock = _socket(pynng.Push0, url, tls)
        if send_timeout is not None:
            self.sock.send_timeout = int(send_timeout * 1000)
        self.sock.add_post_pipe_connect_cb(lambda _pipe: self.connected.set())
        self.sock.add_post_pipe_remove_cb(lambda _pipe: self.hung_up.set())
        self.sock.dial(url, block=False)

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def send(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.sock.send(data)
        except pynng.Timeout:
            raise StreamTimeout(f"the buffer at {self.url} took nothing within the send timeout") from None

    def end(self, close_timeout: float) -> bool:
        try:
            self.hung_up.clear()
            # once the buffer hangs up, do not dial it again (it would count a new producer)
            self.sock.reconnect_time_min = self.sock.reconnect_time_max = NO_REDIAL_MS
            self.sock.send_timeout = int(close_timeout * 1000)
            self.sock.send(END_MARKER)
            return self.hung_up.wait(close_timeout)
        except pynng.Timeout:
            return False
        finally:
            self.sock.close()

    def close(self) -> None:
        self.sock.close()


class _TlsPush:
    """Producer link over ``ssl`` (tls+tcp): connects on first use, retrying until the send timeout."""

    def __init__(self, url: str, context: ssl.SSLContext, send_timeout: float | None) -> None:
        self.url, self.context, self.send_timeout = url, context, send_timeout
        self.conn: SpConnection | None = None

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.conn is None:
            try:
                self.conn = SpConnection.open(self.url, self.context, PUSH0, PULL0)
            except StreamRefused:
                raise
            except OSError:
                if time.monotonic() + REDIAL > deadline:
                    return False
                time.sleep(REDIAL)
        self.conn.sock.settimeout(self.send_timeout)
        return True

    def send(self, data: bytes | bytearray | memoryview) -> None:
        if self.conn is None and not self.wait_connected(self.send_timeout if self.send_timeout else 1e9):
            raise StreamTimeout(f"could not connect to the buffer at {self.url} within the send timeout")
        assert self.conn is not None
        try:
            self.conn.send(data)
        except TimeoutError:
            raise StreamTimeout(f"the buffer at {self.url} took nothing within the send timeout") from None

    def end(self, close_timeout: float) -> bool:
        if self.conn is None:
            return False
        try:
            self.conn.sock.settimeout(close_timeout)
            self.conn.send(END_MARKER)
            return self.conn.wait_hang_up(close_timeout)
        except OSError:
            return False
        finally:
            self.conn.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class Producer:
    """Pushes messages into a buffer; ``close()`` ends this producer's stream explicitly.

    Closing sends the end marker and waits (up to ``close_timeout``) for the buffer to hang up, which
    it does after taking every message sent before the marker: nothing is lost in nng's queues.
    """

    def __init__(self, url: str, *, tls: TLSFiles | None = None, context: ssl.SSLContext | None = None,
                 send_timeout: float | None = None, close_timeout: float = 60.0) -> None:
        check_nng_url(url)
        self.url = url
        self.close_timeout = close_timeout
        self.messages_sent = 0
        self.bytes_sent = 0
        self._link: _NngPush | _TlsPush
        if _is_tls(url):
            self._link = _TlsPush(url, _context(url, tls, context), send_timeout)
        else:
            self._link = _NngPush(url, tls, send_timeout)
        self._closed = False
        self._confirmed = False

    def connect(self, timeout: float) -> None:
        """Wait until connected; ``ConnectionError`` after ``timeout`` seconds (``StreamRefused`` at once
        when a tls+tcp buffer refuses this certificate)."""
        if not self._link.wait_connected(timeout):
            raise ConnectionError(f"could not connect to {self.url} within {timeout:g} s; is the receiver "
                                  "listening there?")

    def send(self, data: bytes | bytearray | memoryview) -> None:
        if is_end(data):
            raise ValueError("an empty message or one equal to the end marker cannot be sent as data")
        self._link.send(data)
        self.messages_sent += 1
        self.bytes_sent += len(data)

    def close(self) -> bool:
        """Send the end marker and wait for the buffer to take everything; False if it did not confirm."""
        if not self._closed:
            self._closed = True
            self._confirmed = self._link.end(self.close_timeout)
        return self._confirmed

    def abort(self) -> None:
        """Close without an end marker (the buffer sees this producer vanish, as if it crashed)."""
        self._closed = True
        self._link.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
