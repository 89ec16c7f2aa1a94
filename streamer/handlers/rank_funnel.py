"""RankFunnel: carries the messages of MPI ranks > 0 to rank 0, which alone owns the outward socket.

Why: a ZeroMQ PULL receiver fair-queues between the connections it reads from, so messages from several
ranks reach it in no guaranteed order, and a receiver has no way to acknowledge. A stream with a start
and an end (SIMPLON's dheader ... dseries_end) is only ordered if it leaves through one connection.

How: rank 0 binds a ROUTER socket on ``host`` (port chosen by the OS) and broadcasts its address over
MPI; every other rank connects a DEALER. A thread on rank 0 hands each arriving message to ``deliver``
(which puts it on the outward socket) in arrival order per rank. ``flush()`` on a rank > 0 that sent messages since
its last flush sends a token and waits for rank 0 to answer it, which rank 0 does only after delivering everything that rank sent
before the token. So after the runner's barrier that follows every rank's flush, all data is already on
rank 0's outward socket, ahead of anything rank 0 sends next (the stream footer).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import zmq

from streamer.base import DeliveryError, Message, RunContext

log = logging.getLogger(__name__)

Deliver = Callable[[list, bool], None]  # (parts, multipart) -> None; parts are zmq.Frame or bytes
_MESSAGE, _MULTIPART, _FLUSH, _FLUSHED, _FAILED = b"M", b"L", b"F", b"K", b"E"


class FunnelError(DeliveryError):
    """Rank 0 could not deliver a message another rank sent through the funnel."""


class RankFunnel:
    def __init__(self, context: RunContext, *, host: str = "127.0.0.1", timeout_s: float = 600.0,
                 high_water_mark: int = 4) -> None:
        if context.nranks > 1 and context.comm is None:
            raise RuntimeError(f"{context.nranks} ranks but no MPI communicator: run under mpiexec")
        self.context = context
        self.host = host
        self.timeout_ms = int(timeout_s * 1000)
        self.high_water_mark = high_water_mark
        self._zmq = zmq.Context()
        self._socket: zmq.Socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._tokens = 0
        self._unconfirmed = 0  # messages sent since rank 0 last confirmed delivery
        self.error: BaseException | None = None

    def start(self, deliver: Deliver | None) -> None:
        """Collective: every rank calls it; rank 0 passes ``deliver``, the others None."""
        if self.context.rank == 0:
            router = self._zmq.socket(zmq.ROUTER)
            router.setsockopt(zmq.RCVHWM, self.high_water_mark)
            router.setsockopt(zmq.LINGER, 1000)
            port = router.bind_to_random_port(f"tcp://{self.host}")
            address = f"tcp://{self.host}:{port}"
            self._socket = router
            assert deliver is not None
            self._thread = threading.Thread(target=self._serve, args=(router, deliver), daemon=True,
                                            name="rank-funnel")
            self._thread.start()
            self.context.comm.bcast(address, root=0)
            log.info("rank 0: funnel for %d ranks listening on %s", self.context.nranks - 1, address)
        else:
            address = self.context.comm.bcast(None, root=0)
            dealer = self._zmq.socket(zmq.DEALER)
            dealer.setsockopt(zmq.SNDHWM, self.high_water_mark)
            dealer.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
            dealer.setsockopt(zmq.RCVTIMEO, self.timeout_ms)
            dealer.setsockopt(zmq.LINGER, -1)
            dealer.connect(address)
            self._socket = dealer

    def _serve(self, router: zmq.Socket, deliver: Deliver) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            identity, kind, *parts = router.recv_multipart(copy=False)
            kind = kind.bytes
            if kind == _FLUSH:
                reply = _FLUSHED if self.error is None else _FAILED
                router.send_multipart([identity, reply, parts[0]])
                continue
            if self.error is not None:
                continue  # already failed: drop, the sender learns it at its next flush
            try:
                deliver(parts if kind == _MULTIPART else parts[:1], kind == _MULTIPART)
            except BaseException as exc:  # reported to the other ranks at their flush, and to rank 0
                self.error = exc
                log.error("rank 0: funnel could not deliver a message: %s", exc)

    def send(self, message: Message) -> None:
        """Rank > 0: hand one message to rank 0."""
        assert self._socket is not None and self.context.rank > 0
        try:
            if isinstance(message, list):
                self._socket.send_multipart([_MULTIPART, *message], copy=False)
            else:
                self._socket.send_multipart([_MESSAGE, message], copy=False)
            self._unconfirmed += 1
        except zmq.Again as exc:
            raise TimeoutError(f"rank {self.context.rank}: rank 0 took no message for "
                               f"{self.timeout_ms / 1000:g} s") from exc

    def flush(self) -> None:
        """Rank > 0: return once rank 0 delivered everything this rank sent. Rank 0: raise a delivery error."""
        if self.context.rank == 0:
            if self.error is not None:
                raise FunnelError(f"rank 0 could not deliver another rank's message: {self.error}")
            return
        assert self._socket is not None
        if not self._unconfirmed:
            return  # nothing to confirm (and rank 0 may already have stopped after the final barrier)
        self._tokens += 1
        token = str(self._tokens).encode()
        try:
            self._socket.send_multipart([_FLUSH, token])
            while True:
                kind, answered = self._socket.recv_multipart()
                if answered == token:
                    break
        except zmq.Again as exc:
            raise TimeoutError(f"rank {self.context.rank}: rank 0 did not confirm delivery within "
                               f"{self.timeout_ms / 1000:g} s") from exc
        if kind == _FAILED:
            raise FunnelError(f"rank {self.context.rank}: rank 0 failed to deliver this rank's messages")
        self._unconfirmed = 0

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._zmq.term()
