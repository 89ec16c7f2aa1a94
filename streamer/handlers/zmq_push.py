"""ZMQPushDataHandler: messages onto a ZeroMQ PUSH socket (multi-part for SIMPLON), the way DECTRIS
detectors stream (``role: server`` binds, e.g. ``tcp://*:9999``; ``role: client`` connects to a PULL
that binds).

With several MPI ranks only rank 0 owns the PUSH socket; the other ranks' messages reach it through a
``RankFunnel`` whose flush is confirmed. So the receiver sees one connection, and therefore rank 0's
stream header before any image and the series end after every image, which a PULL socket reading
several connections could not guarantee. Closing lingers up to ``linger_s`` so queued messages are
delivered, not dropped.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal

import zmq
from pydantic import Field

from streamer.base import ComponentConfig, RunContext
from streamer.handlers.rank_zero import RankZeroHandler
from streamer.registry import Component, register

log = logging.getLogger(__name__)


class ZMQPushDataHandlerConfig(ComponentConfig):
    type: Literal["ZMQPushDataHandler"]
    url: str = Field(pattern=r"^(tcp|ipc)://.+", description="ZeroMQ endpoint, e.g. tcp://*:9999")
    role: Literal["client", "server"] = Field("server", description="server: bind url; client: connect to url")
    linger_s: float = Field(600.0, ge=0, description="how long closing waits for queued messages to go out")
    send_timeout_s: float = Field(600.0, gt=0, description="give up when no receiver takes a message this long")
    high_water_mark: int = Field(16, ge=1, description="messages queued per connection before send blocks")
    funnel_host: str = Field("127.0.0.1", description="address rank 0 listens on for the other ranks' "
                             "messages (set to this node's address when ranks run on several nodes)")


class ZMQPushDataHandler(RankZeroHandler):
    def __init__(self, config: ZMQPushDataHandlerConfig, context: RunContext) -> None:
        super().__init__(config, context)
        self.config: ZMQPushDataHandlerConfig = config
        self._zmq: zmq.Context | None = None
        self._socket: zmq.Socket | None = None
        self._lock = threading.Lock()  # rank 0's main thread and funnel thread share the socket

    def open_transport(self) -> None:
        cfg = self.config
        self._zmq = zmq.Context()
        socket = self._zmq.socket(zmq.PUSH)
        socket.setsockopt(zmq.SNDHWM, cfg.high_water_mark)
        socket.setsockopt(zmq.SNDTIMEO, int(cfg.send_timeout_s * 1000))
        socket.setsockopt(zmq.LINGER, int(cfg.linger_s * 1000))
        if cfg.role == "server":
            socket.bind(cfg.url)
        else:
            socket.connect(cfg.url)
        self._socket = socket
        log.info("rank 0: ZMQ push %s %s", "bound to" if cfg.role == "server" else "connecting to", cfg.url)

    def deliver(self, parts: list, multipart: bool) -> None:
        assert self._socket is not None
        with self._lock:
            try:
                if multipart:
                    self._socket.send_multipart(parts, copy=False)
                else:
                    self._socket.send(parts[0], copy=False)
            except zmq.Again as exc:
                raise TimeoutError(f"no ZeroMQ receiver at {self.config.url} took a message for "
                                   f"{self.config.send_timeout_s:g} s") from exc

    def close_transport(self) -> None:
        if self._socket is None:
            return
        self._socket.close()  # lingers up to linger_s for queued messages
        self._socket = None
        assert self._zmq is not None
        self._zmq.term()
        self._zmq = None
        log.info("rank 0: ZMQ push on %s closed after %d messages", self.config.url, self.messages_sent)


register("data_handlers", Component(ZMQPushDataHandlerConfig, ZMQPushDataHandler))
