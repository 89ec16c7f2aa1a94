"""The tests' DECTRIS-style receiver holds senders to the SIMPLON v1 rules: fed by hand over a real ZeroMQ
PUSH, it refuses a header without the fields a detector sends, and any frame id out of order."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import zmq

from streamer.base import RunContext, StreamStart
from streamer.serializers import simplon
from streamer.serializers.simplon_header import REQUIRED_KEYS
from tests.fixtures.net import free_port
from tests.streamer.simplon_receiver import REQUIRED, SimplonReceiver

CONFIG = {"nimages": 3, "ntrigger": 1, "trigger_mode": "exts", "x_pixels_in_detector": 4,
          "y_pixels_in_detector": 2, "bit_depth_image": 16, "count_time": 0.001, "frame_time": 0.01}


def header(config: dict) -> list[bytes]:
    return [json.dumps({"htype": "dheader-1.0", "series": 5, "header_detail": "basic"}).encode(),
            json.dumps(config).encode()]


def image(frame: int) -> list[bytes]:
    blob = np.full((2, 4), frame, dtype="<u2").tobytes()
    return [json.dumps({"htype": "dimage-1.0", "series": 5, "frame": frame,
                        "hash": hashlib.md5(blob).hexdigest()}).encode(),
            json.dumps({"htype": "dimage_d-1.0", "shape": [4, 2], "type": "uint16", "encoding": "<",
                        "size": len(blob)}).encode(),
            blob,
            json.dumps({"htype": "dconfig-1.0", "start_time": 0, "stop_time": 1, "real_time": 1}).encode()]


END = [json.dumps({"htype": "dseries_end-1.0", "series": 5}).encode()]


def feed(messages: list[list[bytes]]) -> SimplonReceiver:
    url = f"tcp://127.0.0.1:{free_port()}"
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 5000)
    push.bind(url)
    try:
        with SimplonReceiver(url, deadline_s=20) as receiver:
            for message in messages:
                push.send_multipart(message)
            receiver.join()
    finally:
        push.close()
        context.term()
    return receiver


def test_a_good_series_is_taken() -> None:
    receiver = feed([header(CONFIG), image(0), image(1), image(2), END])
    assert receiver.refused is None and receiver.ended and receiver.frames == [0, 1, 2]
    assert [int(i[0, 0]) for i in receiver.images] == [0, 1, 2]


@pytest.mark.parametrize("missing", ["ntrigger", "nimages", "x_pixels_in_detector", "frame_time"])
def test_a_header_without_a_detector_field_is_refused(missing: str) -> None:
    config = {k: v for k, v in CONFIG.items() if k != missing}
    receiver = feed([header(config), image(0), END])
    assert receiver.refused == f"missing field {missing!r}" and not receiver.frames


def test_an_out_of_order_frame_id_is_refused() -> None:
    receiver = feed([header(CONFIG), image(0), image(2), image(1), END])
    assert receiver.refused == "frame id 2 out of order: expected 1" and receiver.frames == [0]


def test_a_series_shorter_than_announced_is_refused() -> None:
    receiver = feed([header(CONFIG), image(0), image(1), END])
    assert receiver.refused is not None and "announced 3 frames" in receiver.refused


def test_the_receiver_asks_for_what_the_serializer_promises() -> None:
    """The receiver's list comes from the SIMPLON description, the serializer's from its own module."""
    assert set(REQUIRED) == set(REQUIRED_KEYS)
    ser = simplon.SimplonBinarySerializer(simplon.SimplonBinarySerializerConfig(
        type="SimplonBinarySerializer", image="detector", series=5), RunContext("exp=x:run=1"))
    facts = ser.header_facts({"detector": np.zeros((1, 2, 4), dtype=np.uint16)})
    (message,) = ser.stream_header(StreamStart(events=3, facts=facts))
    receiver = feed([message, image(0), image(1), image(2), END])
    assert receiver.refused is None and receiver.ended
