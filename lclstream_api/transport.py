"""Reading messages from a buffer's send URL (the consumer side of a transfer), via ``buffer.client``."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from buffer.client import StreamTimeout
from buffer.client import messages as buffer_messages
from buffer.config import TLSFiles as DataTLS

__all__ = ["DataTLS", "StreamTimeout", "messages"]

_END = object()


def messages(url: str, *, idle_timeout: float = 120.0, tls: DataTLS | None = None,
             interruptible: bool = False, connections: int = 1) -> Iterator[bytes]:
    """Yield each message from the buffer at ``url`` until its end-of-stream marker.

    Raises StreamTimeout when nothing (not even the end) arrives for ``idle_timeout`` seconds.
    ``interruptible``: receive in a helper thread so that Ctrl-C (KeyboardInterrupt) reaches the
    caller at once; a blocking nng receive would hold it back until the next message or the timeout.
    ``connections``: parallel connections to the buffer (see ``buffer.client.messages``).
    """
    source = buffer_messages(url, tls=tls, timeout=idle_timeout, connections=connections)
    return _through_thread(source) if interruptible else source


def _through_thread(source: Iterator[bytes], depth: int = 16, poll: float = 0.2) -> Iterator[bytes]:
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=poll)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for message in source:
                if not put(message):
                    break
            put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)
        finally:
            source.close()  # type: ignore[attr-defined]  # closes the nng socket

    threading.Thread(target=pump, name="lclstream-receive", daemon=True).start()
    try:
        while True:
            try:
                item = handoff.get(timeout=poll)
            except queue.Empty:
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
