"""SimplonBinarySerializer and MsgpackSerializer round trips, and decode_payload for every format."""

import hashlib
import json

import msgpack
import numpy as np
import pydantic
import pytest

from streamer.base import RunContext, StreamStart
from streamer.envelope import PayloadFormat
from streamer.pipelines.items import BatchItem
from streamer.serializers import decode_payload, simplon
from streamer.serializers.frames import pack_frames, unpack_frames
from streamer.serializers.hdf5 import HDF5Serializer, HDF5SerializerConfig
from streamer.serializers.msgpack_events import MsgpackSerializer, MsgpackSerializerConfig
from streamer.serializers.msgpack_events import decode as decode_msgpack

CONTEXT = RunContext("mfx:run=12", rank=1, nranks=3)


def batch(dtype: str = "uint16", panels: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    shape = (4, panels, 20, 36) if panels else (4, 20, 36)
    image = rng.poisson(0.2, shape).astype(dtype)
    return {"detector": image, "pulse_id": np.array([7, 10, 13, 16]), "timestamp": np.array([1.0, 1.1, 1.2, 1.3]),
            "photon_energy": np.array([9500.0, 9501.0, 9502.0, 9503.0])}


def simplon_serializer(**options) -> simplon.SimplonBinarySerializer:
    config = simplon.SimplonBinarySerializerConfig(type="SimplonBinarySerializer", image="detector", **options)
    return simplon.SimplonBinarySerializer(config, CONTEXT)


@pytest.mark.parametrize("encoding,dtype,panels", [
    ("bslz4", "uint16", 2), ("bslz4", "uint32", 0), ("bslz4", "float32", 0), ("none", "uint16", 2),
    ("none", "int32", 0),
])
def test_simplon_images_round_trip(encoding: str, dtype: str, panels: int) -> None:
    data = batch(dtype, panels)
    ser = simplon_serializer(encoding=encoding, pulse_id_field="pulse_id", timestamp_field="timestamp")
    messages = ser.serialize(BatchItem(data, np.array([30, 31, 32, 33])), 0)
    assert len(messages) == 4 and all(len(m) == 5 for m in messages)
    for index, message in enumerate(messages):
        part1, part2, blob, part4, appendix = message
        assert json.loads(part1) == {"htype": "dimage-1.0", "series": 1, "frame": 30 + index,  # the event index
                                     "hash": hashlib.md5(blob).hexdigest()}
        assert json.loads(appendix) == {"event": 30 + index, "rank": 1, "pulse_id": int(data["pulse_id"][index]),
                                        "timestamp_ns": round(data["timestamp"][index] * 1e9)}
        described = json.loads(part2)
        y = 20 * (panels or 1)
        assert described == {"htype": "dimage_d-1.0", "shape": [36, y], "type": dtype, "size": len(blob),
                             "encoding": f"bs{np.dtype(dtype).itemsize * 8}-lz4<" if encoding == "bslz4" else "<"}
        timing = json.loads(part4)
        assert timing["htype"] == "dconfig-1.0" and timing["real_time"] == 1000
        assert timing["stop_time"] - timing["start_time"] == 1000
        assert timing["start_time"] == round(data["timestamp"][index] * 1e9)
        decoded = simplon.decode(message)
        np.testing.assert_array_equal(decoded["image"], data["detector"][index].reshape(y, 36))
        assert decoded["appendix"]["event"] == 30 + index
        # the same message packed into one payload (NNG, files) decodes the same way
        (via_payload,) = decode_payload(pack_frames(message), PayloadFormat.SIMPLON)
        np.testing.assert_array_equal(via_payload["image"], decoded["image"])


def test_simplon_header_footer_and_default_frames() -> None:
    ser = simplon_serializer(header_detail="basic", series=42, timestamp_field="timestamp", exposure_time_ns=2000,
                             detector_config={"beam_center_x": 512.5, "detector_distance": 0.1, "ntrigger": 2})
    facts = ser.header_facts(batch())
    (header,) = ser.stream_header(StreamStart(events=10, facts=facts))
    assert json.loads(header[0]) == {"htype": "dheader-1.0", "series": 42, "header_detail": "basic"}
    config = simplon.decode(header)["config"]
    assert config["beam_center_x"] == 512.5 and config["detector_distance"] == 0.1
    assert config["ntrigger"] == 2  # the user's value wins
    assert (config["nimages"], config["trigger_mode"], config["count_time"]) == (10, "exts", 2e-6)
    assert (config["x_pixels_in_detector"], config["y_pixels_in_detector"], config["bit_depth_image"]) == (36, 40, 16)
    assert config["frame_time"] == pytest.approx(0.1)  # the spacing of the batch's timestamps
    assert "source_identifier" not in config  # an `all` key
    (footer,) = ser.stream_footer()
    assert [json.loads(p) for p in footer] == [{"htype": "dseries_end-1.0", "series": 42}]
    frames = [simplon.decode(m)["frame"] for s in range(2) for m in ser.serialize(batch(), s)]
    assert frames == [1 + 3 * i for i in range(8)]  # no event index: rank + nranks * image number
    assert len(simplon_serializer(header_detail="none").stream_header()[0]) == 1


def test_simplon_all_header_and_frame_renumbering() -> None:
    ser = simplon_serializer(header_detail="all", pulse_id_field="pulse_id")
    (header,) = ser.stream_header(StreamStart(events=4, facts=ser.header_facts(batch(panels=0))))
    assert len(header) == 8
    decoded = simplon.decode(header)
    assert decoded["config"]["source_identifier"] == "mfx:run=12" and decoded["config"]["lclstream_ranks"] == 3
    assert decoded["config"]["lclstream_pulse_id_field"] == "pulse_id"
    assert decoded["tables"]["dflatfield-1.0"].shape == (20, 36) and (decoded["tables"]["dflatfield-1.0"] == 1).all()
    assert not decoded["tables"]["dpixelmask-1.0"].any()
    renumber = simplon.FrameRenumbering()
    messages = ser.serialize(BatchItem(batch(panels=0), np.array([9, 4, 7, 1])), 0)
    assert renumber(header) is header and renumber(ser.stream_footer()[0]) == ser.stream_footer()[0]
    renumbered = [renumber(m) for m in messages]
    assert [simplon.decode(m)["frame"] for m in renumbered] == [0, 1, 2, 3]
    assert [simplon.decode(m)["appendix"]["event"] for m in renumbered] == [9, 4, 7, 1]
    assert all(a[1:] == b[1:] for a, b in zip(renumbered, messages, strict=True))


def test_simplon_frame_field_names_its_replacement() -> None:
    with pytest.raises(pydantic.ValidationError, match="pulse_id_field"):
        simplon.SimplonBinarySerializerConfig(type="SimplonBinarySerializer", image="x", frame_field="pulse_id")


def test_simplon_detects_corruption_and_bad_input() -> None:
    message = simplon_serializer().serialize(batch(), 0)[0]
    damaged = [message[0], message[1], message[2][:-1] + bytes([message[2][-1] ^ 1]), message[3]]
    with pytest.raises(simplon.SimplonError, match="md5"):
        simplon.decode(damaged)
    with pytest.raises(simplon.SimplonError, match="unknown htype"):
        simplon.decode([b'{"htype": "dfoo-1.0"}'])
    with pytest.raises(KeyError, match="'detector'"):
        simplon_serializer().serialize({"other": np.zeros((1, 2, 2))}, 0)
    with pytest.raises(ValueError, match="2-D image"):
        simplon_serializer().serialize({"detector": np.zeros((2, 5))}, 0)
    with pytest.raises(pydantic.ValidationError, match="encoding"):
        simplon.SimplonBinarySerializerConfig(type="SimplonBinarySerializer", image="x", encoding="lz5")


@pytest.mark.parametrize("array_type", ["crystfel", "keep"])
def test_msgpack_round_trip(array_type: str) -> None:
    data = batch("uint16", panels=0)
    config = MsgpackSerializerConfig(type="MsgpackSerializer", array_type=array_type,
                                     fields={"detector": "detector_data", "photon_energy": "beam_energy",
                                             "pulse_id": "pulse_id"})
    messages = MsgpackSerializer(config, CONTEXT).serialize(data, 0)
    assert len(messages) == 4  # one map per event
    for index, message in enumerate(messages):
        raw = msgpack.unpackb(message, raw=False)
        image = raw["detector_data"]
        assert image["shape"] == [20, 36] and isinstance(image["data"], bytes)
        assert image["type"] == ("<i4" if array_type == "crystfel" else "<u2")
        assert isinstance(raw["beam_energy"], float) and raw["pulse_id"] == data["pulse_id"][index]
        decoded = decode_msgpack(message)
        np.testing.assert_array_equal(decoded["detector_data"], data["detector"][index])
        (via_payload,) = decode_payload(message, PayloadFormat.MSGPACK)
        np.testing.assert_array_equal(via_payload["detector_data"], decoded["detector_data"])


def test_msgpack_panels_as_slab_and_floats() -> None:
    data = batch("float64", panels=2)
    (first, *_) = MsgpackSerializer(MsgpackSerializerConfig(type="MsgpackSerializer"), CONTEXT).serialize(data, 0)
    raw = msgpack.unpackb(first, raw=False)
    assert raw["detector"]["type"] == "<f4" and raw["detector"]["shape"] == [40, 36]
    decoded = decode_msgpack(first)
    assert decoded["detector"].shape == (2, 20, 36)
    np.testing.assert_allclose(decoded["detector"], data["detector"][0])
    assert decoded["timestamp"] == 1.0


def test_msgpack_rejects_prefix_keys() -> None:
    with pytest.raises(pydantic.ValidationError, match="'detector' is a prefix of 'detector_data'"):
        MsgpackSerializerConfig(type="MsgpackSerializer", fields={"a": "detector", "b": "detector_data"})


def test_decode_payload_hdf5_and_raw() -> None:
    data = batch()
    config = HDF5SerializerConfig(type="HDF5Serializer", fields={"detector": "/data/data", "pulse_id": "/pid"})
    (message,) = HDF5Serializer(config, CONTEXT).serialize(data, 0)
    (decoded,) = decode_payload(memoryview(message), PayloadFormat.HDF5)
    np.testing.assert_array_equal(decoded["detector"], data["detector"])
    (raw,) = decode_payload(b"\x01\x02", PayloadFormat.RAW)
    assert raw["raw"].tolist() == [1, 2]
    assert unpack_frames(pack_frames([b"a", b"", b"bc"])) == [b"a", b"", b"bc"]
