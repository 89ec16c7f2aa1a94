"""The bounded FIFO between the receiving and the sending thread."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

_POLL = 0.25  # seconds between checks of the stop flag while waiting


class BoundedFifo:
    """Messages in arrival order, with limits on bytes and count.

    The receiving thread calls ``wait_for_room`` *before* taking a message from the network, so a
    full FIFO leaves messages with the producers (backpressure) instead of dropping them. An item
    counts against the limits until the sending thread ``release``-s it after handing it on.
    """

    def __init__(self, max_bytes: int, max_messages: int) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self._items: deque[tuple[Any, int]] = deque()
        self._bytes = 0
        self._count = 0
        self._largest = 0
        self._cond = threading.Condition()
        self._input_ended = False
        self._stopped = False

    def _full(self) -> bool:
        # room is kept for one more message as large as the largest seen, so bytes stay <= max_bytes
        # (a first message larger than max_bytes is still let through, alone)
        return (self._count > 0 and self._bytes + self._largest > self.max_bytes) or self._count >= self.max_messages

    def wait_for_room(self) -> bool:
        """Block while full; False once stopped."""
        with self._cond:
            while self._full() and not self._stopped:
                self._cond.wait(_POLL)
            return not self._stopped

    def put(self, item: Any, nbytes: int) -> None:
        with self._cond:
            self._items.append((item, nbytes))
            self._bytes += nbytes
            if nbytes > self._largest:
                self._largest = nbytes
            self._count += 1
            self._cond.notify_all()

    def get(self) -> tuple[Any, int] | None:
        """The oldest item, or None when input has ended and everything was taken, or on stop."""
        with self._cond:
            while not self._items and not self._input_ended and not self._stopped:
                self._cond.wait(_POLL)
            if self._stopped or not self._items:
                return None
            return self._items.popleft()

    def release(self, nbytes: int) -> None:
        with self._cond:
            self._bytes -= nbytes
            self._count -= 1
            self._cond.notify_all()

    def end_input(self) -> None:
        with self._cond:
            self._input_ended = True
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def drop_all(self) -> int:
        """Forget what is still queued (on cancel); returns how many messages that was."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n
