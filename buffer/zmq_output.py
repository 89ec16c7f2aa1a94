"""ZeroMQ PUSH output for consumers that speak ZeroMQ; ``buffer.end_marker`` ends the stream, as over nng."""

from __future__ import annotations

import logging
import threading
import time

import pynng
import zmq
from zmq.utils.monitor import recv_monitor_message

from buffer.config import BufferConfig
from buffer.end_marker import END_MARKER
from buffer.fifo import BoundedFifo
from buffer.nng_side import END_MARKER_GAP, EndpointError, fifo_items, payload
from buffer.status import StatusBoard

log = logging.getLogger(__name__)

SEND_POLL_MS = 250
SEND_HWM = 2  # messages ZeroMQ may queue per consumer, beyond the buffer's own limit


class ZmqOutput:
    """Binds a PUSH socket; counts consumers with a socket monitor."""

    def __init__(self, cfg: BufferConfig, board: StatusBoard, stopped: threading.Event) -> None:
        assert cfg.send_zmq is not None
        self.board = board
        self.stopped = stopped
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        self.sock.setsockopt(zmq.SNDTIMEO, SEND_POLL_MS)
        self.sock.setsockopt(zmq.LINGER, 0)
        self._monitor = self.sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        try:
            self.sock.bind(cfg.send_zmq)
        except zmq.ZMQError as exc:
            self.sock.close(0)
            self._monitor.close(0)
            self.ctx.term()
            raise EndpointError(f"cannot bind --send-zmq URL {cfg.send_zmq}: {exc}") from None
        self._closing = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="zmq-monitor", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        poller = zmq.Poller()
        poller.register(self._monitor, zmq.POLLIN)
        while not self._closing.is_set():
            if not poller.poll(SEND_POLL_MS):
                continue
            event = recv_monitor_message(self._monitor)["event"]
            with self.board.lock:
                if event == zmq.EVENT_ACCEPTED:
                    self.board.consumers_connected += 1
                    self.board.consumers_total += 1
                elif event == zmq.EVENT_DISCONNECTED:
                    self.board.consumers_connected -= 1
            log.info("zmq consumer %s (%d now)", "connected" if event == zmq.EVENT_ACCEPTED else "disconnected",
                     self.board.consumers_connected)

    def _send(self, data: bytes, stopped: threading.Event, deadline: float | None = None) -> bool:
        while not stopped.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                self.sock.send(data)
                return True
            except zmq.Again:
                continue
        return False

    def forward(self, fifo: BoundedFifo) -> None:
        for item, n in fifo_items(fifo, self.board):
            if not self._send(payload(item, n), self.stopped):
                raise pynng.Closed()  # same signal as the nng output being closed under it

    def end(self, deadline: float, stopped: threading.Event) -> int:
        """One end marker per connected consumer (PUSH round robin spreads them), then let them flush."""
        for _ in range(self.board.consumers_connected):
            if not self._send(END_MARKER, stopped, deadline):
                break
            self.board.end_markers_sent += 1
            time.sleep(END_MARKER_GAP)
        self.sock.setsockopt(zmq.LINGER, max(int((deadline - time.monotonic()) * 1000), 0))
        return 0

    def reconcile(self) -> None:
        """Nothing to do: the socket monitor reports every connection and disconnection."""

    def close(self) -> None:
        self._closing.set()
        self._watcher.join(2 * SEND_POLL_MS / 1000 + 1)
        self.sock.disable_monitor()
        self._monitor.close(0)
        self.sock.close()
        self.ctx.term()
