"""ZMQPushDataHandler: messages onto a ZeroMQ PUSH socket (multi-part for SIMPLON), the way DECTRIS
detectors stream (``role: server`` binds, e.g. ``tcp://*:9999``; ``role: client`` connects to a PULL
that binds).

With several MPI ranks only rank 0 owns the PUSH socket; the other ranks' messages reach it through a
``RankFunnel`` whose flush is confirmed. So the receiver sees one connection, and therefore rank 0's
stream header before any image and the series end after every image, which a PULL socket reading
several connections could not guarantee. Rank 0 also renumbers SIMPLON images 0, 1, 2... in the order
they leave (``renumber_frames``), since DECTRIS receivers stop at the first frame id out of order.

A PUSH socket never says whether anybody reads, so rank 0 watches its receivers (``ReceiverWatch``) and
the run fails, with a message naming the URL and a non-zero exit, instead of blocking or exiting 0 when:
no receiver connects within ``receiver_timeout_s`` (before the first message); a receiver goes away
before the last message was handed over (messages queued for it are lost); or no receiver takes a
message, or the last ones at close, within ``receiver_timeout_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Literal

import zmq
from pydantic import Field

from streamer.base import ComponentConfig, DeliveryError, RunContext
from streamer.handlers.rank_zero import RankZeroHandler
from streamer.handlers.zmq_receivers import ReceiverWatch
from streamer.registry import Component, register
from streamer.serializers.simplon import FrameRenumbering

log = logging.getLogger(__name__)
POLL_S = 0.2  # how often a blocked send looks at the receivers again


class ZMQPushDataHandlerConfig(ComponentConfig):
    type: Literal["ZMQPushDataHandler"]
    url: str = Field(pattern=r"^(tcp|ipc)://.+", description="ZeroMQ endpoint, e.g. tcp://*:9999")
    role: Literal["client", "server"] = Field("server", description="server: bind url; client: connect to url")
    receiver_timeout_s: float = Field(
        60.0, gt=0, description="how long rank 0 waits for a receiver to connect, for a receiver to take a "
        "message, and at the end for the last messages to go out; then the run fails (exit 1)")
    high_water_mark: int = Field(16, ge=1, description="messages queued per connection before send blocks")
    renumber_frames: bool = Field(True, description="SIMPLON images get frame ids 0, 1, 2... in the order they "
                                  "leave, as DECTRIS receivers require (each image's appendix keeps its event)")
    funnel_host: str = Field("127.0.0.1", description="address rank 0 listens on for the other ranks' "
                             "messages (set to this node's address when ranks run on several nodes)")


class ZMQPushDataHandler(RankZeroHandler):
    def __init__(self, config: ZMQPushDataHandlerConfig, context: RunContext) -> None:
        super().__init__(config, context)
        self.config: ZMQPushDataHandlerConfig = config
        self._zmq: zmq.Context | None = None
        self._socket: zmq.Socket | None = None
        self._watch: ReceiverWatch | None = None
        self._renumber = FrameRenumbering() if config.renumber_frames else None
        self._delivered = 0
        self._lock = threading.Lock()  # rank 0's main thread and funnel thread share the socket

    @property
    def funnel_timeout_s(self) -> float:
        # a rank > 0 waits for rank 0 to pass on a few queued messages, each up to receiver_timeout_s
        return max(600.0, 4 * self.config.receiver_timeout_s)

    def open_transport(self) -> None:
        cfg = self.config
        self._zmq = zmq.Context()
        socket = self._zmq.socket(zmq.PUSH)
        socket.setsockopt(zmq.SNDHWM, cfg.high_water_mark)
        socket.setsockopt(zmq.LINGER, int(cfg.receiver_timeout_s * 1000))
        self._watch = ReceiverWatch(socket)
        try:
            if cfg.role == "server":
                socket.bind(cfg.url)
            else:
                socket.connect(cfg.url)
        except zmq.ZMQError as exc:
            self._abandon(socket)
            raise OSError(exc.errno, f"cannot {'bind' if cfg.role == 'server' else 'connect'} {cfg.url}: "
                          f"{exc.strerror}") from None
        self._socket = socket
        log.info("rank 0: ZMQ push %s %s", "bound to" if cfg.role == "server" else "connecting to", cfg.url)

    def _failure(self, what: str) -> DeliveryError:
        return DeliveryError(f"ZMQ push {self.config.url}: {what} ({self._delivered} messages sent)")

    def deliver(self, parts: list, multipart: bool) -> None:
        with self._lock:
            if self._socket is None or self._watch is None:
                raise self._failure("the socket is closed after an earlier failure")
            if self._delivered == 0 and not self._watch.wait_for_receiver(self.config.receiver_timeout_s):
                self._fail_now(f"no receiver connected within {self.config.receiver_timeout_s:g} s")
            if multipart and self._renumber is not None:
                parts = self._renumber(parts)
            self._send(parts, multipart)
            self._delivered += 1

    def _send(self, parts: list, multipart: bool) -> None:
        assert self._socket is not None and self._watch is not None
        deadline = time.monotonic() + self.config.receiver_timeout_s
        while True:
            self._watch.poll()
            if self._watch.left:
                self._fail_now("the receiver went away before the end of the stream; messages queued for it "
                               "are lost")
            if self._socket.poll(int(POLL_S * 1000), zmq.POLLOUT):
                try:
                    if multipart:
                        self._socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
                    else:
                        self._socket.send(parts[0], flags=zmq.NOBLOCK, copy=False)
                    return
                except zmq.Again:
                    pass
            if time.monotonic() > deadline:
                self._fail_now(f"no receiver took a message for {self.config.receiver_timeout_s:g} s")

    def _fail_now(self, what: str) -> None:
        """Drop the socket without lingering (nobody takes its messages) and raise the reason."""
        error = self._failure(what)
        if self._socket is not None:
            self._abandon(self._socket)
            self._socket = None
        raise error

    def _abandon(self, socket: zmq.Socket) -> None:
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        socket.close(linger=0)
        if self._zmq is not None:
            self._zmq.term()
            self._zmq = None

    def close_transport(self) -> None:
        with self._lock:
            if self._socket is None:
                return
            assert self._watch is not None and self._zmq is not None
            self._watch.poll()
            left = self._watch.left
            self._watch.stop()
            self._watch = None
            started = time.monotonic()
            self._socket.close()  # lingers up to receiver_timeout_s for queued messages
            self._socket = None
            self._zmq.term()
            self._zmq = None
            waited = time.monotonic() - started
        if waited >= self.config.receiver_timeout_s:
            raise self._failure(f"the receiver did not take the last messages within "
                                f"{self.config.receiver_timeout_s:g} s")
        log.info("rank 0: ZMQ push on %s closed after %d messages%s", self.config.url, self._delivered,
                 " (the receiver hung up after the last one)" if left else "")


register("data_handlers", Component(ZMQPushDataHandlerConfig, ZMQPushDataHandler))
