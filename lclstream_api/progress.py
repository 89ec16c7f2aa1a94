"""A one-line progress display with rate and counts, shown only on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """Counts messages, events and bytes; redraws at most every ``interval`` seconds on a TTY."""

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool | None = None,
                 interval: float = 0.2) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self.messages = self.events = self.bytes = 0
        self.start = time.monotonic()
        self._last_draw = 0.0

    def update(self, messages: int = 0, events: int = 0, nbytes: int = 0) -> None:
        self.messages += messages
        self.events += events
        self.bytes += nbytes
        now = time.monotonic()
        if self.enabled and now - self._last_draw >= self.interval:
            self._last_draw = now
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return (f"{self.label}: {self.messages} messages, {self.events} events, {human_bytes(self.bytes)} "
                f"| {human_bytes(self.bytes / elapsed)}/s, {self.messages / elapsed:.1f} msg/s, "
                f"{elapsed:.1f} s")

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()
