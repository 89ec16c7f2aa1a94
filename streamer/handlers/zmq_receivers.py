"""ReceiverWatch: which receivers are connected to a ZeroMQ socket, from the socket's monitor events.

A PUSH socket never says whether anybody takes its messages: with no receiver a send just waits, and
messages queued for a receiver that goes away are silently dropped. The monitor does say it: a receiver
is there once its ZMTP handshake succeeded, and a ``disconnected`` event that follows no failed handshake
is a receiver that went away (a port probe that never speaks ZMTP gives a failed handshake first, so it
is not counted).

libzmq emits ``handshake succeeded`` without naming the connection, so the watch counts events rather
than tracking connections one by one. Not thread-safe: its owner polls it under the lock that guards
the watched socket.
"""

from __future__ import annotations

import struct
import time

import zmq

_EVENT = struct.Struct("=HI")
_FAILED = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
WATCHED = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | _FAILED


class ReceiverWatch:
    def __init__(self, socket: zmq.Socket) -> None:
        """Start watching ``socket``; call before it binds or connects so no event is missed."""
        self._socket = socket
        self._monitor: zmq.Socket | None = socket.get_monitor_socket(WATCHED)
        self.arrived = 0   # receivers whose handshake succeeded
        self.failed = 0    # connections whose handshake failed (not receivers)
        self.dropped = 0   # disconnections, of receivers and of failed connections alike

    @property
    def left(self) -> int:
        """Receivers that went away."""
        return max(0, self.dropped - self.failed)

    @property
    def present(self) -> int:
        return max(0, self.arrived - self.left)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Take in the events that arrived, waiting up to ``timeout_s`` for the first one."""
        if self._monitor is None:
            return
        wait_ms = int(timeout_s * 1000)
        while self._monitor.poll(wait_ms):
            head, _endpoint = self._monitor.recv_multipart()
            event, _value = _EVENT.unpack(head[:_EVENT.size])
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.arrived += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.dropped += 1
            elif event & _FAILED:
                self.failed += 1
            wait_ms = 0

    def wait_for_receiver(self, timeout_s: float) -> bool:
        """True once a receiver is connected; False if none came within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        self.poll()
        while self.present == 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.poll(min(remaining, 0.5))
        return True

    def stop(self) -> None:
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
