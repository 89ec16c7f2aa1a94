"""One buffer run: a receiving thread and a sending thread around a bounded FIFO, plus the lifecycle.

``waiting -> streaming -> draining -> done``; ``failed`` on idle timeout; ``canceled`` on ``cancel()``.
Each side is either sockets speaking nng's wire format (tcp://, ipc:// and tls+tcp://, ``socket_side``:
peers are admitted by TLS certificate and role, and a message a free consumer can take goes straight
from the producer's connection into the consumer's, spliced by the kernel between plain sockets) or
pynng (ws://, wss://, inproc://: ``nng_side``, messages forwarded as the ``pynng.Message`` objects nng
received).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

import pynng

from buffer.callbacks import CallbackPoster
from buffer.config import BufferConfig
from buffer.fifo import BoundedFifo
from buffer.nng_side import NngInput, NngOutput
from buffer.reporting import Reporter
from buffer.socket_side import SocketInput, SocketOutput
from buffer.sp_wire import is_socket_url
from buffer.status import BufferState, BufferStatus, StatusBoard

log = logging.getLogger(__name__)


class Input(Protocol):
    thread: threading.Thread

    def stop_listening(self) -> None: ...

    def reconcile(self) -> None: ...

    def close(self) -> None: ...


class Output(Protocol):
    def forward(self, fifo: BoundedFifo) -> None: ...

    def end(self, deadline: float, stopped: threading.Event) -> int: ...

    def reconcile(self) -> None: ...

    def close(self) -> None: ...

TICK = 0.1  # seconds between lifecycle checks in the controlling thread
RECONCILE_INTERVAL = 1.0  # seconds between checks that counted connections still exist


class Buffer:
    """Build with a config (sockets are opened at once; ``EndpointError`` if they cannot be), then ``run()``."""

    def __init__(self, cfg: BufferConfig, reporter: Reporter | None = None) -> None:
        self.cfg = cfg
        if reporter is None:
            poster = CallbackPoster(cfg.callback, cfg.cb_secret) if cfg.callback else None
            reporter = Reporter(status_file=cfg.status_file, callback=poster)
        self.reporter = reporter
        send_url = cfg.send if cfg.send is not None else f"zmq+{cfg.send_zmq}"
        self.board = StatusBoard(cfg.recv, send_url, os.getpid(), on_change=reporter.state_change)
        socket_out = cfg.send is not None and is_socket_url(cfg.send)
        direct = socket_out and is_socket_url(cfg.recv)
        self.fifo = BoundedFifo(cfg.max_bytes, cfg.max_messages, cfg.direct_wait if direct else 0.0)
        self.stopped = threading.Event()
        self.finished = threading.Event()
        self.output: Output
        self.input: Input
        if socket_out:
            self.output = SocketOutput(cfg, self.board, self.fifo)
        elif cfg.send is not None:
            self.output = NngOutput(cfg, self.board)
        else:
            from buffer.zmq_output import ZmqOutput  # pyzmq is only needed for this output

            self.output = ZmqOutput(cfg, self.board, self.stopped)
        try:
            input_side = SocketInput if is_socket_url(cfg.recv) else NngInput
            self.input = input_side(cfg, self.board, self.fifo, on_error=self._fail)
        except BaseException:
            self._close_output()
            raise
        self._sender = threading.Thread(target=self._send_loop, name="send", daemon=True)

    # -- threads -------------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        board = self.board
        try:
            self.output.forward(self.fifo)
            if self.stopped.is_set():
                return
            left = self.output.end(time.monotonic() + self.cfg.end_timeout, self.stopped)
            reason = f"{left} consumers did not hang up after the end marker" if left else None
            board.transition(BufferState.DONE, reason, only_from=(BufferState.DRAINING,))
        except pynng.Closed:
            pass  # canceled or failed: the controlling thread closed the socket under us
        except Exception as exc:  # anything else is a bug or a resource problem: fail, never hang
            log.exception("sending failed")
            self._fail(f"sending failed: {exc}")
        finally:
            self.finished.set()

    # -- control ------------------------------------------------------------------------------------

    def cancel(self, reason: str = "canceled") -> None:
        """Stop now (from any thread, e.g. a signal handler): state ``canceled``, sockets closed."""
        self._stop(BufferState.CANCELED, reason)

    def _fail(self, reason: str) -> None:
        self._stop(BufferState.FAILED, reason)

    def _stop(self, state: BufferState, reason: str) -> None:
        self.board.transition(state, reason)
        self.stopped.set()
        self.fifo.stop()
        self.input.close()
        if self.cfg.send is not None:
            self.output.close()
        self.finished.set()

    def _close_output(self) -> None:
        if not getattr(self, "_output_closed", False):
            self._output_closed = True
            self.output.close()

    def run(self) -> BufferStatus:
        """Forward until done, failed or canceled; returns the final status."""
        cfg, board = self.cfg, self.board
        if board.on_change is not None:
            board.on_change(board.snapshot())  # the initial "waiting" line
        self.input.thread.start()
        self._sender.start()
        started = time.monotonic()
        next_report = started + cfg.report_interval
        next_reconcile = started + RECONCILE_INTERVAL
        try:
            while not self.finished.wait(TICK):
                now = time.monotonic()
                if (cfg.idle_timeout is not None and board.state is BufferState.WAITING
                        and now - started > cfg.idle_timeout):
                    self._fail(f"no producer connected within {cfg.idle_timeout:g} seconds")
                if board.state is BufferState.DRAINING and not cfg.recv_dial:
                    self.input.stop_listening()
                if now >= next_reconcile:
                    next_reconcile = now + RECONCILE_INTERVAL
                    self.input.reconcile()
                    self.output.reconcile()
                if now >= next_report:
                    next_report = now + cfg.report_interval
                    board.update_rates()
                    self.reporter.periodic(board.snapshot())
        finally:
            self.stopped.set()
            self.fifo.stop()
            self.input.close()
            self.input.thread.join(5)
            self._sender.join(5)
            self._close_output()
            board.update_rates()
            final = board.snapshot()
            self.reporter.periodic(final)
            self.reporter.close()
        return final

