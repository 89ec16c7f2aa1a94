"""The buffer's live status: the pydantic model others parse, and the thread-safe board that fills it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

class BufferState(StrEnum):
    WAITING = "waiting"
    STREAMING = "streaming"
    DRAINING = "draining"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in (BufferState.DONE, BufferState.FAILED, BufferState.CANCELED)

    @property
    def rank(self) -> int:
        """Order of the states: a buffer's state never goes to a lower rank (the final ones share the top)."""
        return _RANK[self]


_RANK = {BufferState.WAITING: 0, BufferState.STREAMING: 1, BufferState.DRAINING: 2,
         BufferState.DONE: 3, BufferState.FAILED: 3, BufferState.CANCELED: 3}


EXIT_CODES = {BufferState.DONE: 0, BufferState.FAILED: 1, BufferState.CANCELED: 3}


class BufferStatus(BaseModel):
    """One snapshot, as printed on stdout, written to --status-file and POSTed to --callback."""

    model_config = ConfigDict(extra="forbid")

    state: BufferState
    reason: str | None = None
    pid: int
    recv_url: str
    send_url: str
    started_at: float
    time: float
    producers_connected: int = 0
    producers_total: int = 0
    producers_refused: int = 0  # producers that came once the stream was draining
    connections_refused: int = 0  # peers refused at the connection: TLS handshake, certificate role, greeting
    consumers_connected: int = 0
    consumers_total: int = 0
    messages_received: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    messages_buffered: int = 0
    bytes_buffered: int = 0
    end_markers_sent: int = 0
    messages_direct: int = 0  # sent straight from a producer's connection, never copied into memory
    receive_rate_bytes: float = 0.0
    receive_rate_messages: float = 0.0
    send_rate_bytes: float = 0.0
    send_rate_messages: float = 0.0


class StatusBoard:
    """Counters written by the forwarding threads and pipe callbacks; snapshots computed on demand.

    Every counter is changed under one lock: several connection threads (and nng's callback threads)
    write them.
    """

    def __init__(self, recv_url: str, send_url: str, pid: int,
                 on_change: Callable[[BufferStatus], None] | None = None) -> None:
        self.lock = threading.RLock()
        self.on_change = on_change
        self.state = BufferState.WAITING
        self.reason: str | None = None
        self.recv_url = recv_url
        self.send_url = send_url
        self.pid = pid
        self.started_at = time.time()
        self.producers_connected = 0
        self.producers_total = 0
        self.producers_refused = 0
        self.connections_refused = 0
        self.consumers_connected = 0
        self.consumers_total = 0
        self.messages_received = 0
        self.bytes_received = 0
        self.messages_sent = 0
        self.bytes_sent = 0
        self.end_markers_sent = 0
        self.messages_direct = 0
        self._last = (time.monotonic(), 0, 0, 0, 0)
        self._rates = (0.0, 0.0, 0.0, 0.0)

    def transition(self, new: BufferState, reason: str | None = None, *,
                   only_from: tuple[BufferState, ...] | None = None) -> bool:
        """Move to ``new`` unless the state is final (or not in ``only_from``); report the change once."""
        with self.lock:
            if self.state.final or self.state is new or (only_from is not None and self.state not in only_from):
                return False
            self.state = new
            self.reason = reason
            log.info("state %s%s", new.value, f": {reason}" if reason else "")
            if self.on_change is not None:
                self.on_change(self.snapshot())
            return True

    # -- connections and counts, shared by every kind of input and output ------------------------------

    def producer_joined(self) -> bool:
        """Count a new producer connection; False (and counted as refused) once the stream is draining."""
        with self.lock:
            if self.state is not BufferState.WAITING and self.state is not BufferState.STREAMING:
                self.producers_refused += 1
                log.info("refused a producer connection in state %s", self.state.value)
                return False
            self.producers_connected += 1
            self.producers_total += 1
            log.info("producer connected (%d now)", self.producers_connected)
            self.transition(BufferState.STREAMING, only_from=(BufferState.WAITING,))
            return True

    def producer_left(self, expected: int) -> None:
        """A counted producer connection ended; draining starts once none is left and ``expected`` came."""
        with self.lock:
            self.producers_connected -= 1
            log.info("producer disconnected (%d now)", self.producers_connected)
            if self.producers_connected == 0 and self.producers_total >= expected:
                self.transition(BufferState.DRAINING, f"all {self.producers_total} producers finished",
                                only_from=(BufferState.STREAMING,))

    def refused(self, side: str, why: str) -> None:
        """A peer was refused at the connection (logged with who and why; nothing of it was counted)."""
        with self.lock:
            self.connections_refused += 1
        log.warning("refused a %s connection from %s", side, why)

    def consumer_joined(self) -> None:
        with self.lock:
            self.consumers_connected += 1
            self.consumers_total += 1
            log.info("consumer connected (%d now)", self.consumers_connected)

    def consumer_left(self) -> None:
        with self.lock:
            self.consumers_connected -= 1
            log.info("consumer disconnected (%d now)", self.consumers_connected)

    def count_received(self, nbytes: int) -> None:
        with self.lock:
            self.messages_received += 1
            self.bytes_received += nbytes

    def count_sent(self, nbytes: int, *, direct: bool = False) -> None:
        with self.lock:
            self.messages_sent += 1
            self.bytes_sent += nbytes
            self.messages_direct += direct

    def update_rates(self) -> None:
        """Recompute rates over the time since the previous call (called once per report interval)."""
        now = time.monotonic()
        t0, rm, rb, sm, sb = self._last
        dt = now - t0
        if dt <= 0:
            return
        cur = (self.messages_received, self.bytes_received, self.messages_sent, self.bytes_sent)
        self._rates = (
            (cur[1] - rb) / dt, (cur[0] - rm) / dt, (cur[3] - sb) / dt, (cur[2] - sm) / dt,
        )
        self._last = (now, *cur)

    def snapshot(self) -> BufferStatus:
        rm, rb, sm, sb = self.messages_received, self.bytes_received, self.messages_sent, self.bytes_sent
        return BufferStatus(
            state=self.state, reason=self.reason, pid=self.pid, recv_url=self.recv_url, send_url=self.send_url,
            started_at=self.started_at, time=time.time(),
            producers_connected=self.producers_connected, producers_total=self.producers_total,
            producers_refused=self.producers_refused, connections_refused=self.connections_refused,
            consumers_connected=self.consumers_connected, consumers_total=self.consumers_total,
            messages_received=rm, bytes_received=rb, messages_sent=sm, bytes_sent=sb,
            messages_buffered=max(rm - sm, 0), bytes_buffered=max(rb - sb, 0),
            end_markers_sent=self.end_markers_sent, messages_direct=self.messages_direct,
            receive_rate_bytes=self._rates[0], receive_rate_messages=self._rates[1],
            send_rate_bytes=self._rates[2], send_rate_messages=self._rates[3],
        )
