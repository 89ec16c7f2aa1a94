"""A SIMPLON producer facing a receiver that never comes or stops reading ends within its receiver timeout,
with one clear line and a non-zero exit, instead of blocking or exiting 0 (1 rank and 2 ranks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
import zmq

from tests.fixtures.net import free_port
from tests.streamer.conftest import run_lclstreamer, small_synthetic_config


def write(tmp_path: Path, url: str, role: str = "server", events: int = 20, timeout_s: float = 3) -> Path:
    config = small_synthetic_config(tmp_path / "unused", number_of_events=events, batch_size=4)
    config["data_serializer"] = {"type": "SimplonBinarySerializer", "image": "detector"}
    config["data_handlers"] = [{"type": "ZMQPushDataHandler", "url": url, "role": role,
                                "receiver_timeout_s": timeout_s}]
    path = tmp_path / "simplon.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("ranks,role", [(None, "server"), (2, "server"), (None, "client")])
def test_no_receiver_ends_the_producer_with_a_clear_message(tmp_path: Path, ranks: int | None, role: str) -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    result = run_lclstreamer(["-c", str(write(tmp_path, url, role))], ranks=ranks, timeout=120)
    assert result.returncode != 0
    assert f"ZMQ push {url}: no receiver connected within 3 s" in result.stderr
    if ranks is None:
        assert result.returncode == 1 and "Traceback" not in result.stderr


def test_a_receiver_that_stops_reading_ends_the_producer(tmp_path: Path) -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    config = write(tmp_path, url, events=400, timeout_s=10)  # time enough to connect under load
    data = yaml.safe_load(config.read_text())
    data["data_sources"]["detector"]["shape"] = [4, 128, 128]
    data["data_serializer"]["encoding"] = "none"  # 128 KiB per image: socket buffers fill quickly
    config.write_text(yaml.safe_dump(data))
    context = zmq.Context()
    pull = context.socket(zmq.PULL)  # connects and takes the header, then never reads again
    pull.setsockopt(zmq.RCVHWM, 1)
    pull.setsockopt(zmq.LINGER, 0)
    pull.connect(url)
    try:
        result = run_lclstreamer(["-c", str(config)], timeout=120)
    finally:
        pull.close()
        context.term()
    assert result.returncode == 1, result.stderr
    assert "no receiver took a message for 10 s" in result.stderr and "Traceback" not in result.stderr
