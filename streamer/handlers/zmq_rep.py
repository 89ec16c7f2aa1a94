"""ZMQRepDataHandler: a ZeroMQ REP socket that answers each request with the next message, one frame
per reply: the mode CrystFEL's ``indexamajig --zmq-input=tcp://HOST:PORT --zmq-request=next`` uses.

Rank 0 binds ``url``; the other ranks' messages reach it through a ``RankFunnel``. Messages wait in a
bounded queue (``queue_size``), so the producers slow down to the pace of the requests. At the end
``close()`` waits (up to ``drain_timeout_s``) until every queued message was requested, then answers
requests with an empty frame for ``end_grace_s`` seconds so waiting consumers learn the stream ended.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Literal

import zmq
from pydantic import Field

from streamer.base import ComponentConfig, Message, RunContext
from streamer.handlers.rank_zero import RankZeroHandler
from streamer.registry import Component, register

log = logging.getLogger(__name__)


class ZMQRepDataHandlerConfig(ComponentConfig):
    type: Literal["ZMQRepDataHandler"]
    url: str = Field(pattern=r"^(tcp|ipc)://.+", description="endpoint to bind, e.g. tcp://*:5002")
    queue_size: int = Field(8, ge=1, description="messages held for requests before producers wait")
    drain_timeout_s: float = Field(600.0, gt=0, description="how long closing waits for consumers to take "
                                   "every queued message")
    end_grace_s: float = Field(2.0, ge=0, description="how long empty end-of-stream replies are given")
    send_timeout_s: float = Field(600.0, gt=0, description="give up when no request comes for this long")
    funnel_host: str = Field("127.0.0.1", description="address rank 0 listens on for the other ranks")


class ZMQRepDataHandler(RankZeroHandler):
    def __init__(self, config: ZMQRepDataHandlerConfig, context: RunContext) -> None:
        super().__init__(config, context)
        self.config: ZMQRepDataHandlerConfig = config
        self._queue: queue.Queue = queue.Queue(maxsize=config.queue_size)
        self._ending = threading.Event()
        self._drained = threading.Event()
        self._thread: threading.Thread | None = None
        self.replies_sent = 0
        self.end_replies_sent = 0

    def open_transport(self) -> None:
        zmq_context = zmq.Context()
        socket = zmq_context.socket(zmq.REP)
        socket.setsockopt(zmq.LINGER, 2000)
        socket.bind(self.config.url)  # bind here so a bad address fails open(), not the thread
        self._thread = threading.Thread(target=self._serve, args=(zmq_context, socket), daemon=True,
                                        name="zmq-rep")
        self._thread.start()
        log.info("rank 0: ZMQ REP answering requests on %s", self.config.url)

    def check(self, message: Message) -> None:
        if isinstance(message, list):
            raise TypeError("ZMQRepDataHandler replies with one frame per message, but this message has "
                            f"{len(message)} parts (SIMPLON?); use ZMQPushDataHandler for multi-part streams")

    def deliver(self, parts: list, multipart: bool) -> None:
        if multipart or len(parts) != 1:
            raise TypeError(f"ZMQRepDataHandler replies with one frame per message, not {len(parts)}")
        try:
            self._queue.put(parts[0], timeout=self.config.send_timeout_s)
        except queue.Full as exc:
            raise TimeoutError(f"no request on {self.config.url} for {self.config.send_timeout_s:g} s") from exc

    def _serve(self, zmq_context: zmq.Context, socket: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        end_deadline: float | None = None
        try:
            while end_deadline is None or time.monotonic() < end_deadline:
                if self._drained.is_set() and end_deadline is None:
                    end_deadline = time.monotonic() + self.config.end_grace_s
                if not poller.poll(100):
                    continue
                socket.recv()  # the request's content ("next") does not matter
                reply = self._next_reply()
                socket.send(reply, copy=False)
                if len(reply):
                    self.replies_sent += 1
                else:
                    self.end_replies_sent += 1
        finally:
            socket.close()
            zmq_context.term()

    def _next_reply(self) -> bytes:
        """The next queued message, waiting for one; an empty frame once the stream ended and drained."""
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._ending.is_set():
                    self._drained.set()
                    return b""

    def close_transport(self) -> None:
        if self._thread is None:
            return
        self._ending.set()
        deadline = time.monotonic() + self.config.drain_timeout_s
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self._queue.qsize()
        self._drained.set()  # from now on: empty end-of-stream replies for end_grace_s
        self._thread.join(timeout=self.config.end_grace_s + 10)
        self._thread = None
        log.info("rank 0: ZMQ REP on %s closed: %d messages answered, %d end replies",
                 self.config.url, self.replies_sent, self.end_replies_sent)
        if left:
            raise TimeoutError(f"{left} messages on {self.config.url} were never requested within "
                               f"{self.config.drain_timeout_s:g} s")

    def summary(self) -> dict:
        out = super().summary()
        if self.context.rank == 0:
            out["replies"] = self.replies_sent
        return out


register("data_handlers", Component(ZMQRepDataHandlerConfig, ZMQRepDataHandler))
