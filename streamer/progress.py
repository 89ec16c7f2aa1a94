"""Progress and rate on a terminal, one line rewritten in place; silent when the stream is not a TTY."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str = "", stream: TextIO | None = None,
                 enabled: bool | None = None, interval: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.label = label
        self.interval = interval
        self.start = time.monotonic()
        self.last = 0.0
        self.events = 0
        self.bytes = 0

    def update(self, events: int, nbytes: int) -> None:
        self.events += events
        self.bytes += nbytes
        now = time.monotonic()
        if self.enabled and now - self.last >= self.interval:
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        share = f"{self.events}/{self.total}" if self.total else str(self.events)
        self.stream.write(f"\r{self.label}{share} events  {self.events / elapsed:8.1f} events/s  "
                          f"{self.bytes / elapsed / 1e6:8.1f} MB/s ")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
