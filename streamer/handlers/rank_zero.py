"""RankZeroHandler: base of handlers whose transport lives on MPI rank 0 only (ZeroMQ PUSH and REP).

Rank 0 delivers its own messages directly; the other ranks hand theirs to rank 0 through a
``RankFunnel`` (see rank_funnel.py for why and how ordering holds). Subclasses open their transport in
``open_transport()`` (rank 0 only), deliver in ``deliver()`` (rank 0, main thread or funnel thread) and
release it in ``close_transport()``.
"""

from __future__ import annotations

from abc import abstractmethod

from streamer.base import DataHandler, Message, MessageInfo, message_nbytes
from streamer.handlers.rank_funnel import RankFunnel


class RankZeroHandler(DataHandler):
    _funnel: RankFunnel | None = None

    @property
    def funnel_timeout_s(self) -> float:
        """How long a rank > 0 waits for rank 0 to take (and confirm) its messages."""
        return float(self.config.send_timeout_s)  # type: ignore[attr-defined]

    def open(self) -> None:
        if self.context.nranks > 1:
            self._funnel = RankFunnel(self.context, host=self.config.funnel_host,  # type: ignore[attr-defined]
                                      timeout_s=self.funnel_timeout_s)
        if self.context.rank == 0:
            self.open_transport()
        if self._funnel is not None:
            self._funnel.start(self.deliver if self.context.rank == 0 else None)

    @abstractmethod
    def open_transport(self) -> None:
        """Rank 0: bind or connect the outward socket."""

    @abstractmethod
    def deliver(self, parts: list, multipart: bool) -> None:
        """Rank 0: send one message (``parts``: its frames, as bytes or zmq.Frame)."""

    @abstractmethod
    def close_transport(self) -> None:
        """Rank 0: deliver what is still queued and release the outward socket."""

    def check(self, message: Message) -> None:  # noqa: B027 - optional hook
        """Any rank: refuse a message the transport cannot carry, before it travels."""

    def handle(self, message: Message, info: MessageInfo) -> None:
        self.check(message)
        if self.context.rank == 0:
            if self._funnel is not None:
                self._funnel.flush()  # raises if another rank's message could not be delivered
            self.deliver(message if isinstance(message, list) else [message], isinstance(message, list))
        else:
            assert self._funnel is not None
            self._funnel.send(message)
        self.messages_sent += 1
        self.bytes_sent += message_nbytes(message)

    def flush(self) -> None:
        if self._funnel is not None:
            self._funnel.flush()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._funnel is not None:
                self._funnel.stop()
                self._funnel = None
            if self.context.rank == 0:
                self.close_transport()

    def summary(self) -> dict:
        return {**super().summary(), "url": self.config.url}  # type: ignore[attr-defined]
