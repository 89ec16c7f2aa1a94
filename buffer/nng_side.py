"""The nng sockets of a buffer (ws://, wss://, inproc://): producers push into a Pull0, consumers pull
from a Push0.

``buffer.end_marker`` is the end of a stream, on both sides: a producer (or an upstream buffer) sends
one after its data and the buffer closes that connection; the buffer sends one to each consumer
after all data, and the consumer closes its connection on receiving it. End markers are therefore
never forwarded as data.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pynng

from buffer.config import BufferConfig, url_host
from buffer.end_marker import END_MARKER, END_MARKER_SIZE, is_end
from buffer.fifo import BoundedFifo
from buffer.sp_wire import EndpointError
from buffer.status import BufferState, StatusBoard
from buffer.tls import tls_config

log = logging.getLogger(__name__)

RECV_POLL_MS = 250  # receive timeout: how often the receiving thread notices draining and stop
END_MARKER_GAP = 0.02  # seconds between end markers, so a consumer can close before the next one


def fifo_items(fifo: BoundedFifo, board: StatusBoard) -> Iterator[tuple[Any, int]]:
    """Yield each stored message in order; after the caller handed it on it is released and counted."""
    while (got := fifo.get()) is not None:
        yield got
        fifo.release(got[1])
        board.count_sent(got[1])


def payload(item: Any, nbytes: int) -> Any:
    """A buffer over a stored message's bytes without copying them (nng messages or bytes-likes)."""
    if isinstance(item, pynng.Message):
        return pynng.ffi.buffer(pynng.lib.nng_msg_body(item._nng_msg), nbytes)
    return item


def msg_len(msg: pynng.Message) -> int:
    # The length without materialising the body (pynng has no public accessor for it).
    return pynng.lib.nng_msg_len(msg._nng_msg)


def message_is_end(msg: pynng.Message, nbytes: int | None = None) -> bool:
    """True for an end marker (``msg.bytes`` is never read for a zero-length message: pynng issue 104)."""
    n = msg_len(msg) if nbytes is None else nbytes
    return n == 0 or (n == END_MARKER_SIZE and is_end(msg.bytes))


def _attach(sock: pynng.Socket, url: str, *, dial: bool, role: str) -> None:
    try:
        if dial:
            sock.dial(url, block=False)
        else:
            sock.listen(url)
    except pynng.AddressInUse:
        raise EndpointError(f"cannot listen on {role} URL {url}: the address is already in use") from None
    except pynng.NNGException as exc:
        verb = "dial" if dial else "listen on"
        raise EndpointError(f"cannot {verb} {role} URL {url}: {exc}") from None


# Errors of a pipe's address lookup that mean its connection is gone while nng still lists the pipe.
# nng's TLS transport can lose the close of a connection that ends while its pipe is not reading
# (e.g. a Pull0 pipe holding a message the socket has not taken yet): the TCP socket is shut and
# freed, but the pipe never fails, no remove event comes, and its address lookup fails with ENOTCONN.
_DISCONNECTED = frozenset({
    pynng.lib.NNG_ESYSERR + errno.ENOTCONN, pynng.lib.NNG_ECLOSED, pynng.lib.NNG_ECONNRESET,
    pynng.lib.NNG_ECONNABORTED, pynng.lib.NNG_ECONNSHUT,
})


class PipeLedger:
    """Which pipes are counted as connected, robust to nng reporting a removal before the addition.

    A pipe that closes while it is being added can have its remove event delivered first; such a
    pipe must not be counted when its late add event arrives.
    """

    def __init__(self) -> None:
        self._live: dict[int, pynng.Pipe] = {}
        self._gone: set[int] = set()

    def add(self, pipe: pynng.Pipe) -> bool:
        if pipe.id in self._gone:
            self._gone.discard(pipe.id)
            return False
        self._live[pipe.id] = pipe
        return True

    def remove(self, pipe: pynng.Pipe) -> bool:
        if self._live.pop(pipe.id, None) is not None:
            return True
        self._gone.add(pipe.id)
        return False

    def vanished(self) -> list[pynng.Pipe]:
        """Counted pipes that are gone without a remove event; they are uncounted here.

        Either nng no longer knows the pipe (its remove event was lost), or nng still lists it but its
        connection is closed (see ``_DISCONNECTED``), so no remove event will ever come.
        """
        lost = []
        for pipe in list(self._live.values()):
            try:
                pipe.remote_address  # noqa: B018 - the lookup itself is the liveness check
            except pynng.NoEntry:
                pass
            except pynng.NNGException as exc:
                if exc.errno not in _DISCONNECTED:
                    continue  # transports without a remote address cannot be checked
            else:
                continue
            lost.append(pipe)
            self._live.pop(pipe.id, None)
        return lost


def _tls(cfg: BufferConfig, url: str, *, dial: bool) -> pynng.TLSConfig | None:
    if cfg.tls is None or not url.startswith("tls+tcp://"):
        return None
    return tls_config(cfg.tls, server=not dial, server_name=url_host(url))


def _open(sock: pynng.Socket, cfg: BufferConfig, url: str, *, dial: bool, role: str,
          on_pre_add: Callable[[pynng.Pipe], None], on_removed: Callable[[pynng.Pipe], None]) -> pynng.Socket:
    """Set up one side's socket: TLS for tls+tcp URLs, connection callbacks, then listen or dial.
    The socket is closed again if it cannot attach (``EndpointError``)."""
    tls = _tls(cfg, url, dial=dial)
    if tls is not None:
        sock.tls_config = tls
    sock.add_pre_pipe_connect_cb(on_pre_add)
    sock.add_post_pipe_remove_cb(on_removed)
    try:
        _attach(sock, url, dial=dial, role=role)
    except EndpointError:
        sock.close()
        raise
    return sock


class NngInput:
    """The producer side: tracks producers, refuses them while draining, feeds the FIFO."""

    def __init__(self, cfg: BufferConfig, board: StatusBoard, fifo: BoundedFifo,
                 on_error: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.on_error = on_error
        self.board = board
        self.fifo = fifo
        self._pipes = PipeLedger()
        self._listening_stopped = False
        # counted before the pipe joins the socket: nng may deliver its messages before the post-add event
        self.sock = _open(pynng.Pull0(recv_max_size=cfg.max_message_size, recv_timeout=RECV_POLL_MS), cfg,
                          cfg.recv, dial=cfg.recv_dial, role="--recv", on_pre_add=self._pre_connect,
                          on_removed=self._removed)
        self.thread = threading.Thread(target=self._run, name="recv", daemon=True)

    def _pre_connect(self, pipe: pynng.Pipe) -> None:
        with self.board.lock:
            if not self._pipes.add(pipe):
                return  # already gone: its remove event came first
            if not self.board.producer_joined():
                self._pipes.remove(pipe)
                pipe.close()

    def _removed(self, pipe: pynng.Pipe) -> None:
        with self.board.lock:
            if self._pipes.remove(pipe):
                self.board.producer_left(self.cfg.producers)

    def reconcile(self) -> None:
        """Uncount producer connections that closed without nng reporting it (called periodically)."""
        with self.board.lock:
            for _pipe in self._pipes.vanished():
                log.warning("a producer connection closed unreported; uncounting it")
                self.board.producer_left(self.cfg.producers)

    def _producer_ended(self, pipe: pynng.Pipe | None) -> None:
        """A producer sent its end marker: close its connection (a dialled upstream: stop redialling)."""
        if pipe is None:
            return
        try:
            if self.cfg.recv_dial:
                pipe.dialer.close()
            else:
                pipe.close()
        except (pynng.NNGException, TypeError, KeyError) as exc:
            log.debug("closing a finished producer's connection: %s", exc)

    def stop_listening(self) -> None:
        """Close the listener once draining, so later producers are refused by TCP itself.

        Until then (one control tick) the pre-connect callback refuses them by closing their pipe,
        which a producer cannot tell from a normal hang-up.
        """
        if self._listening_stopped:
            return
        self._listening_stopped = True
        for listener in list(self.sock.listeners):
            try:
                listener.close()
            except pynng.NNGException as exc:
                log.debug("closing the producer listener: %s", exc)
        log.info("stopped listening for producers on %s", self.cfg.recv)

    def _run(self) -> None:
        board, fifo, sock = self.board, self.fifo, self.sock
        try:
            while fifo.wait_for_room():
                try:
                    msg = sock.recv_msg()
                except pynng.Timeout:
                    if board.state is BufferState.DRAINING:
                        break  # no producer left and nothing arrived within the poll: input is complete
                    continue
                n = msg_len(msg)
                if message_is_end(msg, n):
                    self._producer_ended(msg.pipe)
                    continue
                fifo.put(msg, n)
                board.count_received(n)
        except pynng.Closed:
            pass
        except Exception as exc:  # anything else is a bug or a resource problem: fail, never hang
            log.exception("receiving failed")
            self.on_error(f"receiving failed: {exc}")
        finally:
            fifo.end_input()

    def close(self) -> None:
        self.sock.close()


class NngOutput:
    """The consumer side: Push0 round robin over ready consumers, then one end marker each."""

    def __init__(self, cfg: BufferConfig, board: StatusBoard) -> None:
        assert cfg.send is not None
        self.board = board
        self._pipes = PipeLedger()
        # counted before the pipe joins the socket: Push0 may send to it before the post-add event,
        # and a consumer that got data must be counted when the end markers go out
        self.sock = _open(pynng.Push0(), cfg, cfg.send, dial=cfg.send_dial, role="--send",
                          on_pre_add=self._connected, on_removed=self._removed)

    def _connected(self, pipe: pynng.Pipe) -> None:
        with self.board.lock:
            if self._pipes.add(pipe):
                self.board.consumer_joined()

    def _removed(self, pipe: pynng.Pipe) -> None:
        with self.board.lock:
            if self._pipes.remove(pipe):
                self.board.consumer_left()

    def reconcile(self) -> None:
        """Uncount consumer connections that closed without nng reporting it (called periodically)."""
        with self.board.lock:
            for _pipe in self._pipes.vanished():
                log.warning("a consumer connection closed unreported; uncounting it")
                self.board.consumer_left()

    def forward(self, fifo: BoundedFifo) -> None:
        """Hand every message to nng (each send blocks until a consumer is ready for it)."""
        for item, _n in fifo_items(fifo, self.board):
            if isinstance(item, pynng.Message):
                self.sock.send_msg(item)
            else:
                self.sock.send(pynng.ffi.from_buffer(item))  # from a socket-side input: nng copies it once

    def end(self, deadline: float, stopped: threading.Event) -> int:
        """Send end markers until every connected consumer has hung up; the number still connected.

        Consumers close on their first marker, so each sees exactly one; Push0 only hands a marker
        to a pipe that finished sending everything before it. A consumer that neither reads nor
        hangs up is left connected when ``deadline`` passes.
        """
        self.sock.send_timeout = RECV_POLL_MS
        while self.board.consumers_connected > 0 and time.monotonic() < deadline and not stopped.is_set():
            try:
                self.sock.send(END_MARKER)
            except pynng.Timeout:
                continue
            self.board.end_markers_sent += 1
            time.sleep(END_MARKER_GAP)
        return self.board.consumers_connected

    def close(self) -> None:
        self.sock.close()
