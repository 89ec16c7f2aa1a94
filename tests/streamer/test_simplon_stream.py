"""A SIMPLON series from `mpiexec -n N lclstreamer` into a DECTRIS-style receiver written from the SIMPLON v1
description (tests/streamer/simplon_receiver.py): it arms on the header, sees frames 0..N-1 in order with
1, 2 and 3 ranks, every event exactly once, with the pixels the HDF5 serializer writes for the same events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from streamer.handlers.files import read_frames
from streamer.serializers import simplon
from tests.fixtures.net import free_port
from tests.streamer.conftest import run_lclstreamer, small_synthetic_config
from tests.streamer.simplon_receiver import SimplonReceiver

EVENTS = 20
SHAPE = (2, 16, 24)  # panels x ss x fs: SIMPLON stacks the panels, so 24 x 32 pixels


def run_config(tmp_path: Path, serializer: dict[str, Any], handlers: list[dict[str, Any]]) -> Path:
    config = small_synthetic_config(tmp_path / "files", number_of_events=EVENTS, batch_size=3)
    config["data_sources"]["timestamp"] = {"type": "EventTimestamp"}
    config["data_serializer"] = serializer
    config["data_handlers"] = handlers + config["data_handlers"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def simplon_serializer(detail: str = "basic", **extra: Any) -> dict[str, Any]:
    return {"type": "SimplonBinarySerializer", "image": "detector", "pulse_id_field": "pulse_id",
            "timestamp_field": "timestamp", "series": 9, "header_detail": detail, **extra}


@pytest.fixture(scope="module")
def hdf5_images(tmp_path_factory: pytest.TempPathFactory) -> dict[int, np.ndarray]:
    """pulse id -> image, from the HDF5 serializer's files for the same run (one rank)."""
    tmp_path = tmp_path_factory.mktemp("hdf5")
    path = run_config(tmp_path, small_synthetic_config(tmp_path)["data_serializer"], [])
    result = run_lclstreamer(["-c", str(path), "--log-level", "WARNING"])
    assert result.returncode == 0, result.stderr
    images: dict[int, np.ndarray] = {}
    for file in sorted((tmp_path / "files").glob("*.h5")):
        with h5py.File(file, "r") as f:
            for pulse_id, stack in zip(f["/LCLS/pulse_id"][()], f["/entry/data/data"][()], strict=True):
                images[int(pulse_id)] = stack.reshape(SHAPE[0] * SHAPE[1], SHAPE[2])
    assert sorted(images) == list(range(EVENTS))
    return images


@pytest.mark.parametrize("ranks,role,detail", [(1, "server", "basic"), (2, "server", "all"),
                                               (3, "server", "basic"), (3, "client", "all")])
def test_dectris_receiver_gets_frames_in_order_with_any_rank_count(
        tmp_path: Path, hdf5_images: dict[int, np.ndarray], ranks: int, role: str, detail: str) -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    path = run_config(tmp_path, simplon_serializer(detail, detector_config={"beam_center_x": 12.5}),
                      [{"type": "ZMQPushDataHandler", "url": url, "role": role, "receiver_timeout_s": 60}])
    with SimplonReceiver(url, bind=role == "client") as receiver:
        result = run_lclstreamer(["-c", str(path), "--log-level", "WARNING"], ranks=ranks)
        receiver.join()
    assert result.returncode == 0, result.stderr
    assert receiver.refused is None and receiver.ended
    config = receiver.config
    assert config is not None and receiver.detail == detail
    assert (config["nimages"], config["ntrigger"], config["trigger_mode"]) == (EVENTS, 1, "exts")
    assert (config["x_pixels_in_detector"], config["y_pixels_in_detector"]) == (24, 32)
    assert config["bit_depth_image"] == 16 and config["beam_center_x"] == 12.5  # the user's key is kept
    assert config["frame_time"] == pytest.approx(1 / 120, rel=1e-4)  # from the events' timestamps
    if detail == "all":
        assert config["source_identifier"] == "exp=test01:run=3" and config["lclstream_ranks"] == ranks
        assert receiver.tables["dflatfield-1.0"].shape == (32, 24)
        assert not receiver.tables["dpixelmask-1.0"].any()
    assert receiver.frames == list(range(EVENTS))  # the receiver refuses any other order
    events = [appendix["event"] for appendix in receiver.appendices]
    assert sorted(events) == list(range(EVENTS))  # every event once
    assert all(a["pulse_id"] == a["event"] and a["timestamp_ns"] > 0 for a in receiver.appendices)
    assert {a["rank"] for a in receiver.appendices} == set(range(ranks))
    for appendix, image in zip(receiver.appendices, receiver.images, strict=True):
        np.testing.assert_array_equal(image, hdf5_images[appendix["pulse_id"]])
    # the file handler got the same series; its frame ids are the events' own (renumbering is the ZMQ side's)
    files = [simplon.decode(read_frames(p.read_bytes())) for p in sorted((tmp_path / "files").glob("*.simplon"))]
    assert len(files) == EVENTS + 2
    assert sorted(m["frame"] for m in files if m["htype"] == "dimage-1.0") == list(range(EVENTS))


def test_header_detail_none_does_not_arm_a_dectris_receiver(tmp_path: Path) -> None:
    """The receiver refuses to arm and goes away; the producer then stops with a clear message, exit 1."""
    url = f"tcp://127.0.0.1:{free_port()}"
    config = small_synthetic_config(tmp_path / "unused", number_of_events=300, batch_size=4)
    config["data_sources"]["detector"]["shape"] = [4, 128, 128]  # enough bytes that sending outlasts the refusal
    config["data_serializer"] = {"type": "SimplonBinarySerializer", "image": "detector", "header_detail": "none",
                                 "encoding": "none"}
    config["data_handlers"] = [{"type": "ZMQPushDataHandler", "url": url, "receiver_timeout_s": 30}]
    path = tmp_path / "none.yaml"
    path.write_text(yaml.safe_dump(config))
    with SimplonReceiver(url, rcvhwm=1) as receiver:
        result = run_lclstreamer(["-c", str(path), "--log-level", "WARNING"])
        receiver.join()
    assert receiver.refused is not None and "cannot arm" in receiver.refused
    assert result.returncode == 1, result.stderr
    assert "the receiver went away before the end of the stream" in result.stderr
    assert "Traceback" not in result.stderr
