"""Reading messages from a buffer's send URL (the consumer side of a transfer), via ``buffer.client``."""

from __future__ import annotations

from collections.abc import Iterator

from buffer.client import StreamTimeout
from buffer.client import messages as buffer_messages
from buffer.config import TLSFiles as DataTLS

__all__ = ["DataTLS", "StreamTimeout", "messages"]


def messages(url: str, *, idle_timeout: float = 120.0, tls: DataTLS | None = None) -> Iterator[bytes]:
    """Yield each message from the buffer at ``url`` until its end-of-stream marker.

    Raises StreamTimeout when nothing (not even the end) arrives for ``idle_timeout`` seconds.
    """
    return buffer_messages(url, tls=tls, timeout=idle_timeout)
