"""The buffer's sides on stream sockets (tcp://, ipc://, tls+tcp://), speaking nng's wire format (``sp_wire``).

One thread per connection. Each connection is admitted first (``admission``: the TLS handshake and the
certificate's role on tls+tcp sides, then nng's greeting); a refused peer is logged and counted, and
nothing it sends is counted or delivered. A producer connection's thread reads each message header
and *offers* the message (``BoundedFifo.offer``). When it claims a free consumer connection, the same
thread passes the message from its socket into the consumer's socket (``relay``: spliced by the kernel
between plain sockets, copied through one reusable buffer when a side is TLS), so no other thread is
woken. Only a message that no consumer takes within ``direct_wait`` seconds is copied into the
buffer's memory; a consumer connection's thread sends those, and the end marker.

A connection is only ever closed by the thread that owns it; others may ``shutdown`` it to wake it.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

from buffer.admission import Admission
from buffer.config import BufferConfig
from buffer.end_marker import END_MARKER, END_MARKER_SIZE, end_size, is_end
from buffer.fifo import BoundedFifo, Lane, Outcome, Signal, Sink
from buffer.nng_side import payload
from buffer.relay import Relay, Relayed, send_more
from buffer.sp_wire import (
    PULL0,
    PUSH0,
    Framing,
    ProtocolError,
    accepted,
    connect,
    framing,
    listen,
    recv_exact,
    unlink_ipc,
)
from buffer.status import BufferState, StatusBoard
from buffer.tls import CONSUMER, PRODUCER, PeerRefused

log = logging.getLogger(__name__)

SEND_CHUNK = 1 << 20  # bytes of a stored message sent between progress notes
TAKE_POLL = 0.25  # seconds between checks that an idle consumer is still connected
REDIAL_MIN, REDIAL_MAX = 0.05, 1.0
_HUNG_UP = select.POLLIN | select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


class Connections:
    """The live connections of one side, so closing the side can wake every thread blocked on them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self.closed = threading.Event()

    def start(self, target: Callable[[socket.socket], object], sock: socket.socket, name: str) -> None:
        thread = threading.Thread(target=target, args=(sock,), name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.add(sock)
        if self.closed.is_set():
            self._wake(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.discard(sock)
            self._threads.discard(threading.current_thread())

    @contextlib.contextmanager
    def owned(self, sock: socket.socket) -> Iterator[socket.socket]:
        """Track ``sock`` while the calling thread serves it; untrack and close it afterwards."""
        self.track(sock)
        try:
            yield sock
        finally:
            self.untrack(sock)
            sock.close()

    def alive(self) -> int:
        with self._lock:
            return sum(1 for t in self._threads if t.is_alive())

    @staticmethod
    def _wake(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the plain socket's shutdown: a TLS socket's would drop its state
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed.set()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            self._wake(sock)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)


def _admitted(admission: Admission, board: StatusBoard, sock: socket.socket) -> str | None:
    """How to name the peer once admitted; None (logged and counted) if it was refused."""
    try:
        return admission.admit(sock)
    except PeerRefused as exc:
        board.refused(admission.role, str(exc))
        return None


def _wrapped(admission: Admission, sock: socket.socket) -> socket.socket | None:
    try:
        return admission.wrap(sock)
    except (OSError, ValueError) as exc:
        log.warning("dropped a %s connection: %s", admission.role, exc)
        sock.close()
        return None


def _accept_loop(listener: socket.socket, conns: Connections, serve: Callable[[socket.socket], object],
                 name: str, keep_going: Callable[[], bool]) -> None:
    while keep_going() and not conns.closed.is_set():
        try:
            sock, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return  # the listener was closed
        conns.start(serve, accepted(sock), name)


def _dial_loop(url: str, conns: Connections, serve: Callable[[socket.socket], bool],
               keep_going: Callable[[], bool]) -> None:
    """Dial until a connection ends the stream normally (``serve`` returns True), like an nng dialer."""
    pause = REDIAL_MIN
    while keep_going() and not conns.closed.is_set():
        try:
            sock = connect(url)
        except OSError as exc:
            log.debug("dialling %s: %s", url, exc)
            conns.closed.wait(pause)
            pause = min(pause * 2, REDIAL_MAX)
            continue
        pause = REDIAL_MIN
        if serve(sock):
            return


class SocketInput:
    """The producer side: one thread per producer connection, offering each message it reads."""

    def __init__(self, cfg: BufferConfig, board: StatusBoard, fifo: BoundedFifo,
                 on_error: Callable[[str], None]) -> None:
        self.cfg, self.board, self.fifo, self.on_error = cfg, board, fifo, on_error
        self.framing = framing(cfg.recv)
        self.admission = Admission(cfg, cfg.recv, dial=cfg.recv_dial, role=PRODUCER, own=PULL0, peer=PUSH0)
        self.conns = Connections()
        self.listener = None if cfg.recv_dial else listen(cfg.recv, "--recv")
        self.thread = threading.Thread(target=self._run, name="recv", daemon=True)

    def _taking_producers(self) -> bool:
        return self.board.state in (BufferState.WAITING, BufferState.STREAMING)

    def _run(self) -> None:
        try:
            if self.listener is not None:
                _accept_loop(self.listener, self.conns, self._serve, "producer", self._taking_producers)
            else:
                _dial_loop(self.cfg.recv, self.conns, self._serve, self._taking_producers)
            self.conns.join(60)  # connections still in their greeting; counted producers have all left
        except Exception as exc:  # a bug or a resource problem: fail, never hang
            log.exception("receiving failed")
            self.on_error(f"receiving failed: {exc}")
        finally:
            self.fifo.end_input()

    def _serve(self, sock: socket.socket) -> bool:
        """Forward one producer connection; True if it ended with an end marker."""
        secured = _wrapped(self.admission, sock)
        if secured is None:
            return False
        with self.conns.owned(secured):
            who = _admitted(self.admission, self.board, secured)
            if who is None or not self.board.producer_joined():
                return False
            try:
                return self._forward(secured, who)
            finally:
                self.board.producer_left(self.cfg.producers)

    def _forward(self, sock: socket.socket, who: str) -> bool:
        fifo, limit, framing_ = self.fifo, self.cfg.max_message_size, self.framing
        header = bytearray(framing_.size)
        lane = fifo.open_lane()
        relay = Relay(sock)
        try:
            while recv_exact(sock, memoryview(header)):
                n = framing_.length(header)
                if limit and n > limit:
                    log.warning("closed the producer connection from %s: it announced a %d-byte message, over "
                                "--max-message-size %d", who, n, limit)
                    return False
                body = None
                if end_size(n):  # as short as an end marker: read it to tell
                    body = bytearray(n)
                    if not recv_exact(sock, memoryview(body)):
                        return False
                    if is_end(body):
                        return True  # the producer's end: closing the connection confirms it
                if not self._pass_on(sock, lane, n, body, relay, who):
                    return False
            return False
        except (OSError, ProtocolError) as exc:
            if not self.conns.closed.is_set():
                log.warning("the producer connection from %s failed: %s", who, exc)
            return False
        finally:
            fifo.close_lane(lane)
            relay.close()

    def _pass_on(self, sock: socket.socket, lane: Lane, n: int, body: bytearray | None, relay: Relay,
                 who: str) -> bool:
        """Hand one message to a free consumer, or store it; False when this connection must close."""
        fifo, board = self.fifo, self.board
        offer = fifo.offer(lane, n)
        while offer.outcome is Outcome.CLAIMED:
            assert offer.sink is not None
            result = relay.send(offer.sink.conn, offer.sink.framing.header(n), n, body, fifo.progress)
            fifo.unclaim(offer.sink, alive=result is Relayed.DELIVERED)
            if result is Relayed.NOT_STARTED:
                offer = fifo.offer(lane, n, offer)  # that consumer is gone: the message waits for another
                continue
            if result is Relayed.PRODUCER_LOST:
                log.warning("the producer connection from %s ended in the middle of a message; closing the "
                            "consumer connection that had its first part", who)
                return False
            board.count_received(n)
            board.count_sent(n, direct=True)  # sent to a consumer that went away still counts, as with nng
            return True
        if offer.outcome is not Outcome.STORE:
            return False
        if body is None:
            try:
                body = bytearray(n)
            except MemoryError:
                fifo.unreserve(offer)
                log.warning("closed the producer connection from %s: a %d-byte message does not fit in memory",
                            who, n)
                return False
            if not recv_exact(sock, memoryview(body)):
                fifo.unreserve(offer)
                return False
        fifo.put_offered(offer, body)
        board.count_received(n)
        return True

    def stop_listening(self) -> None:
        """Close the listener once draining, so later producers are refused by the OS itself."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            unlink_ipc(self.cfg.recv)
            log.info("stopped listening for producers on %s", self.cfg.recv)

    def reconcile(self) -> None:
        """Nothing to do: each connection's thread sees its end itself."""

    def close(self) -> None:
        self.conns.close()
        self.stop_listening()


class SocketOutput:
    """The consumer side: one thread per consumer connection taking the oldest message each time."""

    def __init__(self, cfg: BufferConfig, board: StatusBoard, fifo: BoundedFifo) -> None:
        assert cfg.send is not None
        self.cfg, self.board, self.fifo = cfg, board, fifo
        self.url = cfg.send
        self.framing: Framing = framing(cfg.send)
        self.admission = Admission(cfg, cfg.send, dial=cfg.send_dial, role=CONSUMER, own=PUSH0, peer=PULL0)
        self.conns = Connections()
        self.listener = None if cfg.send_dial else listen(cfg.send, "--send")
        self._thread = threading.Thread(target=self._run, name="send-accept", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.listener is not None:
            _accept_loop(self.listener, self.conns, self._serve, "consumer", lambda: True)
        else:
            _dial_loop(self.url, self.conns, self._serve, lambda: True)

    def _serve(self, sock: socket.socket) -> bool:
        """Feed one consumer connection; True once it took its end marker."""
        secured = _wrapped(self.admission, sock)
        if secured is None:
            return False
        with self.conns.owned(secured):
            if _admitted(self.admission, self.board, secured) is None:
                return False
            self.board.consumer_joined()
            sink = Sink(secured, self.framing)
            self.fifo.add_sink(sink)
            try:
                return self._feed(sink)
            finally:
                self.fifo.remove_sink(sink)  # waits until no producer side writes into it any more
                self.board.consumer_left()

    def _feed(self, sink: Sink) -> bool:
        fifo, board, sock = self.fifo, self.board, sink.conn
        while True:
            got = fifo.take(sink, TAKE_POLL)
            if got is Signal.TICK:
                if not sink.busy and _hung_up(sock, 0):
                    return False
            elif got is Signal.STOP:
                return False
            elif got is Signal.END:
                self._end(sock)
                return True
            else:
                try:
                    send_more(sock, self.framing.header(got.nbytes))
                    body = memoryview(payload(got.item, got.nbytes))
                    for start in range(0, got.nbytes, SEND_CHUNK):  # chunks, so waiting offers see progress
                        sock.sendall(body[start:start + SEND_CHUNK])
                        fifo.progress()
                except OSError:
                    fifo.requeue(got, sink)  # it cannot have arrived whole: another consumer gets it
                    return False
                fifo.sent(got, sink)
                board.count_sent(got.nbytes)

    def _end(self, sock: socket.socket) -> None:
        """Send the end marker and wait for the consumer to hang up."""
        try:
            sock.sendall(self.framing.header(END_MARKER_SIZE) + END_MARKER)
        except OSError:
            return
        with self.board.lock:
            self.board.end_markers_sent += 1
        _hung_up(sock, self.cfg.end_timeout)

    def forward(self, fifo: BoundedFifo) -> None:
        """Return once every message was handed to a consumer connection (their threads send them)."""
        fifo.wait_drained()

    def end(self, deadline: float, stopped: threading.Event) -> int:
        """Wait until every consumer took its end marker and hung up; the number still connected."""
        while self.board.consumers_connected > 0 and time.monotonic() < deadline and not stopped.is_set():
            time.sleep(0.02)
        return self.board.consumers_connected

    def reconcile(self) -> None:
        """Nothing to do: each connection's thread sees its end itself."""

    def close(self) -> None:
        self.conns.close()
        if self.listener is not None:
            self.listener.close()
            unlink_ipc(self.url)
        self._thread.join(2)
        self.conns.join(5)


def _hung_up(sock: socket.socket, timeout: float) -> bool:
    """True once the peer closed (a Pull0 consumer never sends anything after its greeting)."""
    poller = select.poll()
    poller.register(sock, _HUNG_UP)
    return bool(poller.poll(int(timeout * 1000)))
