"""The bounded FIFO between the producer side and the consumer side of a buffer.

Messages are kept per producer connection (a *lane*), in arrival order, and handed out oldest first
across lanes. A message is either in memory (counted against ``max_bytes`` and ``max_messages``) or
still in its producer's connection: a lane *offers* the message whose header it has read, a free
consumer may take it directly (the socket side splices it from socket to socket, so the buffer never
copies it), and if no consumer takes it within ``direct_wait`` seconds (at once while no consumer that
can take it is connected) the producer side copies it into memory instead (store and forward), where
it waits for a consumer as long as needed. Holding a message back while consumers are busy slows its
producer down to what the consumers take, so memory fills only when they stall or fall far behind, and
is emptied again as soon as they catch up.

The receiving side reserves room *before* taking a message from the network, so a full FIFO leaves
messages with the producers (backpressure) instead of dropping them. A stored message counts
against the limits until the sending side ``release``-s it after handing it on.
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
    """How an offered message left its producer's connection."""

    STORE = "store"  # room was reserved: the producer side copies the message into memory now
    DELIVERED = "delivered"  # a consumer took it directly and finished
    PRODUCER_LOST = "producer_lost"  # the producer's connection broke in the middle of the message
    STOPPED = "stopped"


class Signal(Enum):
    """What ``take`` returns when it has no message."""

    TICK = "tick"  # nothing yet: check the consumer connection and call again
    END = "end"  # input has ended and every message was handed out
    STOP = "stop"


@dataclass(eq=False)
class Offer:
    """A message whose header was read; its body is still in the producer's connection."""

    lane: Lane
    order: int
    nbytes: int
    taken: bool = False
    outcome: Outcome | None = None


@dataclass(eq=False)
class Stored:
    """A message in memory, as ``take`` and ``get`` hand it out."""

    lane: Lane
    order: int
    item: Any
    nbytes: int


@dataclass(eq=False)
class Lane:
    """One producer connection's messages, oldest first; ``source`` is what a direct taker reads from."""

    source: Any = None
    stored: deque[Stored] = field(default_factory=deque)
    offer: Offer | None = None
    reading: bool = False  # a message is being copied into memory; it follows everything in ``stored``
    closed: bool = False

    def head_order(self) -> int | None:
        if self.stored:
            return self.stored[0].order
        if self.offer is not None and not self.offer.taken and not self.reading:
            return self.offer.order
        return None


class BoundedFifo:
    """Messages in arrival order per lane, with limits on the bytes and count held in memory."""

    def __init__(self, max_bytes: int, max_messages: int, direct_wait: float = 0.0) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.direct_wait = direct_wait  # 0: every message is stored (no consumer side can take directly)
        self._lanes: list[Lane] = []
        self._default: Lane | None = None
        self._order = 0
        self._bytes = 0
        self._count = 0
        self._largest = 0
        self._cond = threading.Condition()
        self._input_ended = False
        self._stopped = False
        self._takers = 0  # consumer connections that can take offered messages directly

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
        with self._cond:
            while self._full() and not self._stopped:
                self._cond.wait(_POLL)
            return not self._stopped

    # -- producer side --------------------------------------------------------------------------------

    def open_lane(self, source: Any = None) -> Lane:
        with self._cond:
            lane = Lane(source=source)
            self._lanes.append(lane)
            return lane

    def close_lane(self, lane: Lane) -> None:
        """The producer connection is finished; its stored messages still go out."""
        with self._cond:
            lane.closed = True
            lane.offer = None
            lane.reading = False
            self._forget_if_empty(lane)
            self._cond.notify_all()

    def _forget_if_empty(self, lane: Lane) -> None:
        if lane.closed and not lane.stored and lane in self._lanes:
            self._lanes.remove(lane)

    def put(self, item: Any, nbytes: int) -> None:
        """Store a message at the end of the one lane of a receiver that has no per-connection lanes."""
        with self._cond:
            if self._default is None:
                self._default = Lane()
                self._lanes.append(self._default)
            self._reserve(nbytes)
            self._order += 1
            self._default.stored.append(Stored(self._default, self._order, item, nbytes))
            self._cond.notify_all()

    def offer(self, lane: Lane, nbytes: int) -> Offer:
        """Offer the message whose header was just read; wait until it is taken or must be stored.

        The returned offer's ``outcome`` is ``DELIVERED`` or ``PRODUCER_LOST`` once a consumer side
        took it directly and finished, or ``STORE`` once ``direct_wait`` passed (at once when it is 0)
        and room for it is reserved: the caller then reads the body and calls ``put_offered``. A
        message not yet stored stays on offer, so a consumer that frees up while memory is full still
        takes it directly.
        """
        with self._cond:
            self._order += 1
            offer = Offer(lane, self._order, nbytes)
            lane.offer = offer
            self._cond.notify_all()
            deadline = time.monotonic() + (self.direct_wait if self._takers else 0.0)
            while True:
                if self._stopped:
                    offer.outcome = Outcome.STOPPED
                if offer.outcome is not None:
                    lane.offer = None
                    return offer
                now = time.monotonic()
                if not offer.taken and now >= deadline and not self._full(nbytes):
                    lane.offer = None
                    lane.reading = True
                    self._reserve(nbytes)
                    offer.outcome = Outcome.STORE
                    return offer
                self._cond.wait(_POLL if offer.taken or now >= deadline else min(deadline - now, _POLL))

    def put_offered(self, offer: Offer, item: Any) -> None:
        """Store an offered message (room reserved by ``offer``) in the place it was offered in."""
        with self._cond:
            offer.lane.stored.append(Stored(offer.lane, offer.order, item, offer.nbytes))
            offer.lane.reading = False
            self._cond.notify_all()

    def unreserve(self, offer: Offer) -> None:
        """An offered message never arrived (its producer's connection broke while it was read)."""
        with self._cond:
            self._bytes -= offer.nbytes
            self._count -= 1
            offer.lane.reading = False
            self._cond.notify_all()

    # -- consumer side --------------------------------------------------------------------------------

    def _oldest(self) -> Lane | None:
        best, best_order = None, None
        for lane in self._lanes:
            order = lane.head_order()
            if order is not None and (best_order is None or order < best_order):
                best, best_order = lane, order
        return best

    def _drained(self) -> bool:
        return self._input_ended and not any(lane.stored or lane.offer or lane.reading for lane in self._lanes)

    def take(self, timeout: float = _POLL, *, direct: bool = True) -> Stored | Offer | Signal:
        """The oldest message: ``Stored`` (send it, then ``release``), an ``Offer`` (``direct``: read it
        from ``offer.lane.source``, then ``finish``), or a ``Signal`` when there is none."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._stopped:
                    return Signal.STOP
                lane = self._oldest() if direct else self._oldest_stored()
                if lane is not None:
                    if lane.stored:
                        stored = lane.stored.popleft()
                        self._forget_if_empty(lane)
                        return stored
                    assert lane.offer is not None
                    lane.offer.taken = True
                    return lane.offer
                if self._drained():
                    return Signal.END
                left = deadline - time.monotonic()
                if left <= 0:
                    return Signal.TICK
                self._cond.wait(min(left, _POLL))

    def _oldest_stored(self) -> Lane | None:
        best = None
        for lane in self._lanes:
            if lane.stored and (best is None or lane.stored[0].order < best.stored[0].order):
                best = lane
        return best

    def wait_drained(self) -> None:
        """Block until input has ended and every message was handed out (or until stopped)."""
        with self._cond:
            while not self._drained() and not self._stopped:
                self._cond.wait(_POLL)

    def get(self) -> tuple[Any, int] | None:
        """The oldest stored item, or None when input has ended and everything was taken, or on stop."""
        while True:
            got = self.take(direct=False)
            if isinstance(got, Stored):
                return got.item, got.nbytes
            if got is not Signal.TICK:
                return None

    def taker_joined(self) -> None:
        """A consumer connection that takes offered messages directly is there (offers wait for it)."""
        with self._cond:
            self._takers += 1

    def taker_left(self) -> None:
        with self._cond:
            self._takers -= 1
            self._cond.notify_all()

    def finish(self, offer: Offer, outcome: Outcome) -> None:
        """A directly taken message is done (``DELIVERED`` or ``PRODUCER_LOST``)."""
        with self._cond:
            offer.outcome = outcome
            self._cond.notify_all()

    def untake(self, offer: Offer) -> None:
        """A direct taker could not start (its consumer is gone): the message is on offer again."""
        with self._cond:
            offer.taken = False
            self._cond.notify_all()

    def requeue(self, stored: Stored) -> None:
        """A stored message could not be sent (its consumer is gone): it goes back to the head of its lane."""
        with self._cond:
            stored.lane.stored.appendleft(stored)
            if stored.lane not in self._lanes:
                self._lanes.append(stored.lane)
            self._cond.notify_all()

    def release(self, nbytes: int) -> None:
        with self._cond:
            self._bytes -= nbytes
            self._count -= 1
            self._cond.notify_all()

    # -- lifecycle ------------------------------------------------------------------------------------

    def end_input(self) -> None:
        with self._cond:
            self._input_ended = True
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def drop_all(self) -> int:
        """Forget what is still stored (on cancel); returns how many messages that was."""
        with self._cond:
            n = sum(len(lane.stored) for lane in self._lanes)
            for lane in self._lanes:
                lane.stored.clear()
            return n
