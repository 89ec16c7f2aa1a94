"""ZeroMQ handlers with real sockets: REP answering a CrystFEL-style REQ client (also under mpiexec -n 2),
PUSH delivering to a PULL that binds, and the clear errors."""

import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import yaml
import zmq

from streamer.base import MessageInfo, RunContext
from streamer.envelope import PayloadFormat
from streamer.handlers.zmq_push import ZMQPushDataHandler, ZMQPushDataHandlerConfig
from streamer.handlers.zmq_rep import ZMQRepDataHandler, ZMQRepDataHandlerConfig
from streamer.serializers.msgpack_events import decode
from tests.streamer.conftest import run_lclstreamer, small_synthetic_config
from tests.streamer.test_handlers_nng import free_port


class RequestClient:
    """What `indexamajig --zmq-request=next` does: send "next", read one frame, until an empty frame."""

    def __init__(self, url: str, max_requests: int = 200, deadline_s: float = 150) -> None:
        self.url, self.max_requests, self.deadline_s = url, max_requests, deadline_s
        self.replies: list[bytes] = []
        self.ended = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "RequestClient":
        self._thread.start()
        return self

    def _run(self) -> None:
        context = zmq.Context()
        deadline = time.monotonic() + self.deadline_s
        request = context.socket(zmq.REQ)
        request.setsockopt(zmq.LINGER, 0)
        request.connect(self.url)
        try:
            for _ in range(self.max_requests):
                request.send(b"next")
                while not request.poll(200):
                    if time.monotonic() > deadline:
                        return
                reply = request.recv()
                if not reply:
                    self.ended = True
                    return
                self.replies.append(reply)
        finally:
            request.close()
            context.term()

    def join(self) -> None:
        self._thread.join(timeout=self.deadline_s + 5)


def test_rep_answers_requests_under_mpi(tmp_path: Path) -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    config = small_synthetic_config(tmp_path / "unused", number_of_events=14, batch_size=4)
    config["data_serializer"] = {"type": "MsgpackSerializer",
                                 "fields": {"detector": "detector_data", "energy": "beam_energy",
                                            "pulse_id": "pulse_id"}}
    config["data_handlers"] = [{"type": "ZMQRepDataHandler", "url": url, "end_grace_s": 1.0}]
    path = tmp_path / "rep.yaml"
    path.write_text(yaml.safe_dump(config))
    client = RequestClient(url).start()
    result = run_lclstreamer(["-c", str(path), "--log-level", "WARNING"], ranks=2)
    client.join()
    assert result.returncode == 0, result.stderr
    assert client.ended, "no empty end-of-stream reply"
    events = [decode(reply) for reply in client.replies]
    assert sorted(e["pulse_id"] for e in events) == list(range(14))
    first = msgpack.unpackb(client.replies[0], raw=False)
    assert first["detector_data"]["type"] == "<i4" and first["detector_data"]["shape"] == [32, 24]
    assert events[0]["detector_data"].shape == (2, 16, 24) and isinstance(first["beam_energy"], float)


def test_rep_refuses_multipart_messages() -> None:
    handler = ZMQRepDataHandler(ZMQRepDataHandlerConfig(type="ZMQRepDataHandler", url=f"tcp://127.0.0.1:{free_port()}",
                                                        end_grace_s=0, drain_timeout_s=1), RunContext("x"))
    handler.open()
    try:
        with pytest.raises(TypeError, match="use ZMQPushDataHandler"):
            handler.handle([b"a", b"b"], MessageInfo(0, 1, 0, 1, PayloadFormat.SIMPLON))
    finally:
        handler.close()


def test_push_client_delivers_everything_queued_before_close() -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind(url)
    try:
        handler = ZMQPushDataHandler(ZMQPushDataHandlerConfig(type="ZMQPushDataHandler", url=url, role="client",
                                                              receiver_timeout_s=60), RunContext("x"))
        handler.open()
        payloads = [np.full(200_000, i, dtype=np.uint8).tobytes() for i in range(10)]
        for seq, payload in enumerate(payloads):
            handler.handle(payload, MessageInfo(0, 1, seq, 1, PayloadFormat.RAW))
        handler.handle([b"part-1", b"part-2"], MessageInfo(0, 1, 10, 1, PayloadFormat.SIMPLON))
        handler.close()  # returns once everything went out, though nothing was read yet
        received = []
        for _ in range(11):
            assert pull.poll(10_000)
            received.append(pull.recv_multipart())
        assert [r[0] for r in received[:10]] == payloads and received[10] == [b"part-1", b"part-2"]
        assert handler.summary()["messages"] == 11
    finally:
        pull.close()
        context.term()


def test_bad_urls_and_several_ranks_without_mpi() -> None:
    with pytest.raises(ValueError, match="url"):
        ZMQPushDataHandlerConfig(type="ZMQPushDataHandler", url="udp://x:1")
    handler = ZMQPushDataHandler(ZMQPushDataHandlerConfig(type="ZMQPushDataHandler", url="tcp://127.0.0.1:1"),
                                 RunContext("x", rank=0, nranks=2, comm=None))
    with pytest.raises(RuntimeError, match="no MPI communicator"):
        handler.open()
