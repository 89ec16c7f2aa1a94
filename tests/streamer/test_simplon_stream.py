"""A SIMPLON stream from `mpiexec -n N lclstreamer` through a real ZeroMQ PULL receiver: exactly one
header first, every image once, one series end last; the file handler got the very same images."""

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
import zmq

from streamer.handlers.files import read_frames
from streamer.serializers import simplon
from tests.streamer.conftest import run_lclstreamer, small_synthetic_config
from tests.streamer.test_handlers_nng import free_port

EVENTS = 20


class PullReceiver:
    """A PULL socket connected to the stream, reading in a thread until dseries_end or a deadline."""

    def __init__(self, url: str, bind: bool = False, deadline_s: float = 150) -> None:
        self.url, self.bind, self.deadline_s = url, bind, deadline_s
        self.messages: list[list[bytes]] = []
        self._context = zmq.Context()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.bound = threading.Event()

    def __enter__(self) -> "PullReceiver":
        self._thread.start()
        if self.bind:
            assert self.bound.wait(10)
        return self

    def _run(self) -> None:
        pull = self._context.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        if self.bind:
            pull.bind(self.url)
            self.bound.set()
        else:
            pull.connect(self.url)
        deadline = time.monotonic() + self.deadline_s
        try:
            while time.monotonic() < deadline:
                if not pull.poll(200):
                    continue
                frames = pull.recv_multipart()
                self.messages.append(frames)
                if json.loads(frames[0]).get("htype") == "dseries_end-1.0":
                    break
        finally:
            pull.close()

    def wait(self) -> list[dict]:
        self._thread.join(timeout=self.deadline_s + 5)
        return [simplon.decode(m) for m in self.messages]

    def __exit__(self, *exc) -> None:
        self._thread.join(timeout=self.deadline_s + 5)
        self._context.term()


def simplon_config(tmp_path: Path, url: str, role: str) -> dict:
    config = small_synthetic_config(tmp_path / "files", number_of_events=EVENTS, batch_size=3)
    config["data_sources"]["timestamp"] = {"type": "EventTimestamp"}
    config["data_serializer"] = {"type": "SimplonBinarySerializer", "image": "detector", "frame_field": "pulse_id",
                                 "timestamp_field": "timestamp", "series": 9,
                                 "detector_config": {"x_pixels_in_detector": 24, "y_pixels_in_detector": 32}}
    config["data_handlers"].insert(0, {"type": "ZMQPushDataHandler", "url": url, "role": role})
    return config


@pytest.mark.parametrize("ranks,role", [(2, "server"), (3, "server"), (3, "client")])
def test_simplon_stream_in_order_under_mpi(tmp_path: Path, ranks: int, role: str) -> None:
    import yaml

    url = f"tcp://127.0.0.1:{free_port()}"
    path = tmp_path / "simplon.yaml"
    path.write_text(yaml.safe_dump(simplon_config(tmp_path, url, role)))
    with PullReceiver(url, bind=role == "client") as receiver:
        result = run_lclstreamer(["-c", str(path), "--log-level", "WARNING"], ranks=ranks)
        assert result.returncode == 0, result.stderr
        decoded = receiver.wait()
    kinds = [m["htype"] for m in decoded]
    assert kinds[0] == "dheader-1.0" and kinds.count("dheader-1.0") == 1
    assert kinds[-1] == "dseries_end-1.0" and kinds.count("dseries_end-1.0") == 1
    images = [m for m in decoded if m["htype"] == "dimage-1.0"]
    assert sorted(m["frame"] for m in images) == list(range(EVENTS))
    assert all(m["series"] == 9 and m["image"].shape == (32, 24) for m in images)
    assert decoded[0]["config"]["x_pixels_in_detector"] == 24
    # every handler got the same bytes: the files hold the very same images
    files = sorted((tmp_path / "files").glob("*.simplon"))
    from_files = [simplon.decode(read_frames(p.read_bytes())) for p in files]
    assert len(from_files) == EVENTS + 2
    assert sorted(hashlib.md5(m["image"].tobytes()).hexdigest() for m in from_files if "image" in m) == \
        sorted(hashlib.md5(m["image"].tobytes()).hexdigest() for m in images)
