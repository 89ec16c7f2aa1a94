"""SimplonBinarySerializer: the DECTRIS SIMPLON stream v1 ("legacy" JSON stream), so software written
for DECTRIS detectors can receive the data.

Messages (each a multi-part message, one JSON object per part unless said otherwise):

* series start, once, by rank 0: ``{"htype": "dheader-1.0", "series", "header_detail"}`` and, when
  ``header_detail`` is ``basic``, a config part (detector configuration keys such as
  ``beam_center_x``, ``detector_distance``, ``x_pixels_in_detector``; given by ``detector_config``);
* per image: ``dimage-1.0`` (series, frame, hash = md5 hex of the data part), ``dimage_d-1.0``
  (shape as [x, y], type such as ``uint16``, encoding ``bs16-lz4<`` or ``<``, size of the data part),
  the data part, and ``dconfig-1.0`` (start_time, stop_time, real_time, in ns);
* series end, once, by rank 0 after every rank finished: ``{"htype": "dseries_end-1.0", "series"}``.

A multi-panel event (panels, ss, fs) is sent as one image with the panels stacked along y.
Frame numbers come from ``frame_field`` (e.g. the ``pulse_id`` data, the global event index) or, by
default, are interleaved over ranks (rank + nranks * image number on that rank), unique either way.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field

from streamer.base import Batch, ComponentConfig, Message, RunContext, Serializer
from streamer.envelope import PayloadFormat
from streamer.registry import Component, register
from streamer.serializers import bitshuffle_lz4

ConfigValue = str | int | float | bool | None | list[float] | list[int]


class SimplonBinarySerializerConfig(ComponentConfig):
    type: Literal["SimplonBinarySerializer"]
    image: str = Field(description="data name of the detector image (2-D per event, or panels x ss x fs)")
    encoding: Literal["bslz4", "none"] = Field(
        "bslz4", description="bslz4: bitshuffle+LZ4 ('bs16-lz4<' for uint16); none: raw little endian ('<')")
    series: int = Field(1, ge=0, description="series id in every message")
    header_detail: Literal["basic", "none"] = Field("basic", description="basic: header plus config part")
    frame_field: str | None = Field(None, description="data name holding each event's frame number")
    timestamp_field: str | None = Field(
        None, description="data name of event timestamps (float seconds or integer ns); default: send time")
    exposure_time_ns: int = Field(1000, ge=0, description="real_time of each image, and stop_time - start_time")
    detector_config: dict[str, ConfigValue] = Field(
        default_factory=dict, description="keys of the dheader config part (beam_center_x, detector_distance...)")


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encoding_name(encoding: str, dtype: np.dtype) -> str:
    return f"bs{dtype.itemsize * 8}-lz4<" if encoding == "bslz4" else "<"


def _as_images(name: str, array: np.ndarray) -> np.ndarray:
    """(events, y, x) little-endian numeric images from a batch field."""
    if array.ndim == 4:
        array = array.reshape(array.shape[0], array.shape[1] * array.shape[2], array.shape[3])
    if array.ndim != 3:
        raise ValueError(f"SimplonBinarySerializer.image {name!r}: each event must be a 2-D image or a "
                         f"panels x ss x fs stack; got per-event shape {array.shape[1:]}")
    if array.dtype.kind not in "uif":
        raise TypeError(f"SimplonBinarySerializer.image {name!r}: dtype {array.dtype} is not numeric")
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def _nanoseconds(value: Any) -> int:
    value = np.asarray(value)
    if value.dtype.kind == "M":
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if value.dtype.kind == "f":
        return int(round(float(value) * 1e9))
    return int(value)


class SimplonBinarySerializer(Serializer):
    payload_format = PayloadFormat.SIMPLON
    one_message_per_event = True

    def __init__(self, config: SimplonBinarySerializerConfig, context: RunContext) -> None:
        super().__init__(config, context)
        self.config: SimplonBinarySerializerConfig = config
        self._images_sent = 0

    def stream_header(self) -> list[Message]:
        parts = [_json({"htype": "dheader-1.0", "series": self.config.series,
                        "header_detail": self.config.header_detail})]
        if self.config.header_detail == "basic":
            detector = {"description": f"LCLStream {self.context.source_identifier}",
                        "source_identifier": self.context.source_identifier, **self.config.detector_config}
            parts.append(_json(detector))
        return [parts]

    def stream_footer(self) -> list[Message]:
        return [[_json({"htype": "dseries_end-1.0", "series": self.config.series})]]

    def serialize(self, batch: Batch, sequence: int) -> list[Message]:
        cfg = self.config
        for name in (cfg.image, cfg.frame_field, cfg.timestamp_field):
            if name is not None and name not in batch:
                raise KeyError(f"SimplonBinarySerializer needs data {name!r} but the batch has only "
                               f"{', '.join(map(repr, sorted(batch))) or 'no data'}")
        images = _as_images(cfg.image, np.asarray(batch[cfg.image]))
        if cfg.encoding == "bslz4":
            blobs = bitshuffle_lz4.encode_stack(images)
        else:
            blobs = [image.tobytes() for image in images]
        y, x = images.shape[1:]
        described = {"htype": "dimage_d-1.0", "shape": [x, y], "type": images.dtype.name,
                     "encoding": encoding_name(cfg.encoding, images.dtype)}
        messages: list[Message] = []
        for index, blob in enumerate(blobs):
            start = (_nanoseconds(batch[cfg.timestamp_field][index]) if cfg.timestamp_field
                     else time.time_ns())
            messages.append([
                _json({"htype": "dimage-1.0", "series": cfg.series, "frame": self._frame(batch, index),
                       "hash": hashlib.md5(blob).hexdigest()}),
                _json({**described, "size": len(blob)}),
                blob,
                _json({"htype": "dconfig-1.0", "start_time": start, "stop_time": start + cfg.exposure_time_ns,
                       "real_time": cfg.exposure_time_ns}),
            ])
            self._images_sent += 1
        return messages

    def _frame(self, batch: Batch, index: int) -> int:
        if self.config.frame_field is not None:
            return int(batch[self.config.frame_field][index])
        return self.context.rank + self.context.nranks * self._images_sent


class SimplonError(ValueError):
    """The frames are not a valid SIMPLON v1 message."""


def decode(frames: list[bytes]) -> dict[str, Any]:
    """One SIMPLON message -> dict: ``htype`` plus its fields; for images also ``image`` (y, x array)."""
    if not frames:
        raise SimplonError("empty message")
    try:
        first = json.loads(frames[0])
    except ValueError as exc:
        raise SimplonError(f"first part is not JSON: {exc}") from exc
    htype = first.get("htype") if isinstance(first, dict) else None
    if htype == "dheader-1.0":
        config = json.loads(frames[1]) if first.get("header_detail") != "none" and len(frames) > 1 else None
        return {**first, "config": config}
    if htype == "dseries_end-1.0":
        return first
    if htype != "dimage-1.0":
        raise SimplonError(f"unknown htype {htype!r} (expected dheader-1.0, dimage-1.0 or dseries_end-1.0)")
    if len(frames) < 4:
        raise SimplonError(f"an image message has 4 parts, got {len(frames)}")
    described, blob, timing = json.loads(frames[1]), frames[2], json.loads(frames[3])
    if described.get("htype") != "dimage_d-1.0" or timing.get("htype") != "dconfig-1.0":
        raise SimplonError("image parts 2 and 4 must be dimage_d-1.0 and dconfig-1.0")
    if len(blob) != described["size"]:
        raise SimplonError(f"data part has {len(blob)} bytes, dimage_d-1.0 says {described['size']}")
    if hashlib.md5(blob).hexdigest() != first["hash"]:
        raise SimplonError(f"md5 of frame {first['frame']} does not match its hash")
    x, y = described["shape"]
    dtype = np.dtype(described["type"]).newbyteorder("<")
    if described["encoding"] == "<":
        image = np.frombuffer(blob, dtype=dtype).reshape(y, x)
    elif described["encoding"] == encoding_name("bslz4", dtype):
        image = bitshuffle_lz4.decode_image(blob, (y, x), dtype)
    else:
        raise SimplonError(f"encoding {described['encoding']!r} is not supported")
    return {**first, "image": image, "type": described["type"], "encoding": described["encoding"],
            "start_time": timing["start_time"], "stop_time": timing["stop_time"], "real_time": timing["real_time"]}


register("serializers", Component(SimplonBinarySerializerConfig, SimplonBinarySerializer))
