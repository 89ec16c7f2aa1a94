"""The bounded FIFO between the producer side and the consumer side of a buffer.

Messages are kept per producer connection (a *lane*), in arrival order, and handed out oldest first
across lanes. A message is either in memory (counted against ``max_bytes`` and ``max_messages``) or
still in its producer's connection. A producer side that has read a message header *offers* the
message: while nothing is stored and a consumer connection (a *sink*) is free, the oldest offer claims
that sink and the producer side writes the message into it straight from its own connection (the
socket side splices it, so the buffer never copies it). While every sink is busy but the consumers
keep taking bytes, offers wait: producers go at the consumers' pace and nothing is copied. Once the
consumers stall (no byte taken for ``direct_wait`` seconds; at once while none is connected) offers
are copied into memory instead (store and forward) and wait there for a consumer as long as needed,
so memory absorbs consumer stalls and late or missing consumers, and empties again (new offers wait
behind stored messages) once they take data again.

The receiving side reserves room *before* taking a message from the network, so a full FIFO leaves
messages with the producers (backpressure) instead of dropping them. A stored message counts against
the limits until the sending side ``release``-s it (or ``sent``) after handing it on.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

_POLL = 0.25  # seconds between checks of the stop flag while waiting


class Outcome(Enum):
    """What an offer came to."""

    STORE = "store"  # room was reserved: read the body and ``put_offered`` it
    CLAIMED = "claimed"  # ``offer.sink`` is this producer side's to write the message into, then ``unclaim``
    STOPPED = "stopped"


class Signal(Enum):
    """What ``take`` returns when it has no message."""

    TICK = "tick"  # nothing yet: check the consumer connection and call again
    END = "end"  # input has ended and every message was handed out
    STOP = "stop"


@dataclass(eq=False)
class Sink:
    """A consumer connection that producer sides may write offered messages into directly."""

    conn: Any
    framing: Any = None  # how messages are framed on this connection (its transport's, not the producer's)
    busy: bool = False  # claimed by a producer side, or sending a stored message
    alive: bool = True


@dataclass(eq=False)
class Offer:
    lane: Lane
    order: int
    nbytes: int
    outcome: Outcome | None = None
    sink: Sink | None = None


@dataclass(eq=False)
class Stored:
    """A message in memory, as ``take`` and ``get`` hand it out."""

    lane: Lane
    order: int
    item: Any
    nbytes: int


@dataclass(eq=False)
class Lane:
    """One producer connection's stored messages, oldest first."""

    stored: deque[Stored] = field(default_factory=deque)
    offer: Offer | None = None
    reading: bool = False  # a message is being copied into memory; it follows everything in ``stored``
    closed: bool = False


class BoundedFifo:
    """Messages in arrival order per lane, with limits on the bytes and count held in memory."""

    def __init__(self, max_bytes: int, max_messages: int, direct_wait: float = 0.0) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.direct_wait = direct_wait
        self._lanes: list[Lane] = []
        self._default: Lane | None = None
        self._order = 0
        self._bytes = 0
        self._count = 0  # stored and reserved messages
        self._stored = 0  # stored messages not yet taken
        self._largest = 0
        self._sinks: list[Sink] = []
        self._progress_at = 0.0  # monotonic time a consumer connection last took bytes
        self._idle: deque[Sink] = deque()
        lock = threading.Lock()
        self._for_producers = threading.Condition(lock)  # offers and room
        self._for_consumers = threading.Condition(lock)  # stored messages, the end
        self._input_ended = False
        self._stopped = False

    # -- limits ---------------------------------------------------------------------------------------

    def _full(self, nbytes: int | None = None) -> bool:
        # without a known size, room is kept for one more message as large as the largest seen, so
        # bytes stay <= max_bytes; a first message larger than max_bytes is still let through, alone
        want = self._largest if nbytes is None else nbytes
        return (self._count > 0 and self._bytes + want > self.max_bytes) or self._count >= self.max_messages

    def _reserve(self, nbytes: int) -> None:
        self._bytes += nbytes
        self._count += 1
        if nbytes > self._largest:
            self._largest = nbytes

    def wait_for_room(self) -> bool:
        """Block while full (for a message of unknown size); False once stopped."""
        with self._for_producers:
            while self._full() and not self._stopped:
                self._for_producers.wait(_POLL)
            return not self._stopped

    # -- producer side --------------------------------------------------------------------------------

    def open_lane(self) -> Lane:
        with self._for_producers:
            lane = Lane()
            self._lanes.append(lane)
            return lane

    def close_lane(self, lane: Lane) -> None:
        """The producer connection is finished; its stored messages still go out."""
        with self._for_producers:
            lane.closed = True
            lane.offer = None
            lane.reading = False
            self._forget_if_empty(lane)
            self._for_consumers.notify_all()

    def _forget_if_empty(self, lane: Lane) -> None:
        if lane.closed and not lane.stored and lane in self._lanes:
            self._lanes.remove(lane)

    def _store(self, lane: Lane, order: int, item: Any, nbytes: int) -> None:
        lane.stored.append(Stored(lane, order, item, nbytes))
        lane.reading = False
        self._stored += 1
        self._for_consumers.notify_all()

    def put(self, item: Any, nbytes: int) -> None:
        """Store a message at the end of the one lane of a receiver without per-connection lanes."""
        with self._for_producers:
            if self._default is None:
                self._default = Lane()
                self._lanes.append(self._default)
            self._reserve(nbytes)
            self._order += 1
            self._store(self._default, self._order, item, nbytes)

    def _oldest_offer(self, offer: Offer) -> bool:
        return all(lane.offer is None or lane.offer.sink is not None or lane.offer.order >= offer.order
                   for lane in self._lanes)

    def offer(self, lane: Lane, nbytes: int, offer: Offer | None = None) -> Offer:
        """Offer the message whose header was just read (again, after a claimed sink failed to start).

        Waits until the oldest offer can claim a free sink (``CLAIMED``), or until the consumers have
        stalled (no consumer connection took a byte for ``direct_wait`` seconds since the offer, or
        none is connected) and room is reserved (``STORE``). An offer not yet stored stays on offer,
        so a sink that frees up while memory is full still takes it directly.
        """
        with self._for_producers:
            if offer is None:
                self._order += 1
                offer = Offer(lane, self._order, nbytes)
            offer.outcome, offer.sink = None, None
            lane.offer = offer
            offered_at = time.monotonic()
            while True:
                if self._stopped:
                    offer.outcome = Outcome.STOPPED
                    break
                if self.direct_wait > 0 and self._idle and not self._stored and self._oldest_offer(offer):
                    sink = self._idle.popleft()
                    sink.busy = True
                    offer.sink, offer.outcome = sink, Outcome.CLAIMED
                    break
                now = time.monotonic()
                # consumers are stalled when none has taken a byte for direct_wait (none connected: at once)
                stall_at = max(self._progress_at, offered_at) + self.direct_wait if self._sinks else now
                if now >= stall_at and not self._full(nbytes):
                    lane.reading = True
                    self._reserve(nbytes)
                    offer.outcome = Outcome.STORE
                    break
                self._for_producers.wait(min(stall_at - now, _POLL) if now < stall_at else _POLL)
            lane.offer = None
            self._for_producers.notify_all()  # the next oldest offer may claim now
            return offer

    def put_offered(self, offer: Offer, item: Any) -> None:
        """Store an offered message (room reserved by ``offer``) in the place it was offered in."""
        with self._for_producers:
            self._store(offer.lane, offer.order, item, offer.nbytes)

    def unreserve(self, offer: Offer) -> None:
        """An offered message never arrived (its producer's connection broke while it was read)."""
        with self._for_producers:
            self._bytes -= offer.nbytes
            self._count -= 1
            offer.lane.reading = False
            self._for_producers.notify_all()

    def progress(self) -> None:
        """A consumer connection just took bytes (called without the lock: one float store)."""
        self._progress_at = time.monotonic()

    def unclaim(self, sink: Sink, *, alive: bool = True) -> None:
        """A producer side is done writing into ``sink``; ``alive=False`` if the consumer is gone (or its
        stream broken), so its connection's thread closes it."""
        with self._for_producers:
            sink.busy = False
            if alive and sink.alive:
                self._idle.append(sink)
                self._for_producers.notify_all()
            else:
                sink.alive = False
                self._for_consumers.notify_all()

    # -- consumer side --------------------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> None:
        with self._for_producers:
            self._sinks.append(sink)
            self._idle.append(sink)
            self._for_producers.notify_all()

    def remove_sink(self, sink: Sink) -> None:
        """Withdraw a sink; waits while a producer side is still writing into it."""
        with self._for_producers:
            sink.alive = False
            while sink.busy:
                self._for_consumers.wait(_POLL)
            if sink in self._idle:
                self._idle.remove(sink)
            self._sinks.remove(sink)

    def _oldest_stored(self) -> Lane | None:
        best = None
        for lane in self._lanes:
            if lane.stored and (best is None or lane.stored[0].order < best.stored[0].order):
                best = lane
        return best

    def _drained(self) -> bool:
        return self._input_ended and not any(lane.stored or lane.offer or lane.reading for lane in self._lanes)

    def take(self, sink: Sink | None = None, timeout: float = _POLL) -> Stored | Signal:
        """The oldest stored message (send it, then ``sent``), or a ``Signal``.

        With a ``sink``, ``Signal.STOP`` also comes when the sink was found dead by a producer side.
        """
        deadline = time.monotonic() + timeout
        with self._for_consumers:
            while True:
                if self._stopped or (sink is not None and not sink.alive and not sink.busy):
                    return Signal.STOP
                if sink is None or not sink.busy:
                    lane = self._oldest_stored()
                    if lane is not None:
                        stored = lane.stored.popleft()
                        self._stored -= 1
                        self._forget_if_empty(lane)
                        if sink is not None:
                            sink.busy = True
                            if sink in self._idle:
                                self._idle.remove(sink)
                        return stored
                    if self._drained():
                        return Signal.END
                left = deadline - time.monotonic()
                if left <= 0:
                    return Signal.TICK
                self._for_consumers.wait(min(left, _POLL))

    def sent(self, stored: Stored, sink: Sink) -> None:
        """``sink`` finished sending a stored message: release its room, offers may claim the sink."""
        with self._for_producers:
            self._bytes -= stored.nbytes
            self._count -= 1
            sink.busy = False
            if sink.alive:
                self._idle.append(sink)
            self._for_producers.notify_all()

    def requeue(self, stored: Stored, sink: Sink) -> None:
        """``sink`` could not send a stored message (its consumer is gone): back to the head of its lane."""
        with self._for_producers:
            stored.lane.stored.appendleft(stored)
            self._stored += 1
            if stored.lane not in self._lanes:
                self._lanes.append(stored.lane)
            sink.busy = False
            sink.alive = False
            self._for_consumers.notify_all()

    def get(self) -> tuple[Any, int] | None:
        """The oldest stored item, or None when input has ended and everything was taken, or on stop."""
        while True:
            got = self.take()
            if isinstance(got, Stored):
                return got.item, got.nbytes
            if got is not Signal.TICK:
                return None

    def release(self, nbytes: int) -> None:
        with self._for_producers:
            self._bytes -= nbytes
            self._count -= 1
            self._for_producers.notify_all()

    def wait_drained(self) -> None:
        """Block until input has ended and every message was handed out (or until stopped)."""
        with self._for_consumers:
            while not self._drained() and not self._stopped:
                self._for_consumers.wait(_POLL)

    # -- lifecycle ------------------------------------------------------------------------------------

    def end_input(self) -> None:
        with self._for_producers:
            self._input_ended = True
            self._for_consumers.notify_all()

    def stop(self) -> None:
        with self._for_producers:
            self._stopped = True
            self._for_producers.notify_all()
            self._for_consumers.notify_all()
