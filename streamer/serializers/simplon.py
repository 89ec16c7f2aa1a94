"""SimplonBinarySerializer: the DECTRIS SIMPLON stream v1 ("legacy" JSON stream), so software written
for DECTRIS detectors can receive the data.

Messages (each a multi-part message, one JSON object per part unless said otherwise):

* series start, once, by rank 0: ``dheader-1.0`` (series, header_detail) and, for ``basic`` and ``all``,
  the detector configuration a DECTRIS detector sends (see ``simplon_header``: nimages, ntrigger,
  trigger_mode, image size, bit depth, count_time, frame_time... filled from the run and its first image,
  ``detector_config`` values winning); ``all`` adds flatfield, pixel mask and count-rate table parts;
* per image: ``dimage-1.0`` (series, frame, hash = md5 hex of the data part), ``dimage_d-1.0``
  (shape as [x, y], type such as ``uint16``, encoding ``bs16-lz4<`` or ``<``, size of the data part),
  the data part, ``dconfig-1.0`` (start_time, stop_time, real_time, in ns) and, with ``image_appendix``,
  the appendix part: JSON with the event's own identity (event index, rank, pulse id, timestamp);
* series end, once, by rank 0 after every rank finished: ``{"htype": "dseries_end-1.0", "series"}``.

A multi-panel event (panels, ss, fs) is sent as one image with the panels stacked along y.
Frame ids: the serializer gives each image its global event index (unique across ranks). DECTRIS
receivers insist on frames 0, 1, 2... in order, which only the transport can guarantee, so
``ZMQPushDataHandler`` renumbers images in the order they leave rank 0 (``FrameRenumbering``); the
appendix keeps each event's identity, so nothing is lost by renumbering.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from streamer.base import Batch, ComponentConfig, Message, RunContext, Serializer, StreamStart
from streamer.envelope import PayloadFormat
from streamer.registry import Component, register
from streamer.serializers import bitshuffle_lz4
from streamer.serializers.simplon_header import ImageFacts, SeriesInfo, header_message, json_part

ConfigValue = str | int | float | bool | None | list[float] | list[int]
IMAGE_HTYPE = "dimage-1.0"
IMAGE_PREFIX = b'{"htype":"dimage-1.0"'  # how this serializer's image messages begin


class SimplonBinarySerializerConfig(ComponentConfig):
    type: Literal["SimplonBinarySerializer"]
    image: str = Field(description="data name of the detector image (2-D per event, or panels x ss x fs)")
    encoding: Literal["bslz4", "none"] = Field(
        "bslz4", description="bslz4: bitshuffle+LZ4 ('bs16-lz4<' for uint16); none: raw little endian ('<')")
    series: int = Field(1, ge=0, description="series id in every message")
    header_detail: Literal["basic", "all", "none"] = Field(
        "basic", description="basic: header plus the detector configuration a DECTRIS detector sends; all: "
        "also LCLStream's keys and neutral flatfield / pixel mask / count-rate table parts; none: header only")
    pulse_id_field: str | None = Field(None, description="data name of each event's pulse id, sent in the "
                                       "image appendix")
    timestamp_field: str | None = Field(
        None, description="data name of event timestamps (float seconds or integer ns): dconfig start_time, the "
        "appendix, and the header's frame_time; default: send time")
    exposure_time_ns: int = Field(1000, ge=0, description="real_time of each image, stop_time - start_time, and "
                                  "the header's count_time")
    image_appendix: bool = Field(True, description="send part 5 of each image: the event's identity as JSON")
    detector_config: dict[str, ConfigValue] = Field(
        default_factory=dict, description="keys of the dheader config part (beam_center_x, detector_distance, "
        "nimages...); they win over the values LCLStream fills in")

    @model_validator(mode="before")
    @classmethod
    def _frame_field_replaced(cls, data: Any) -> Any:
        if isinstance(data, dict) and "frame_field" in data:
            raise ValueError("frame_field is no longer an option: images are numbered 0, 1, 2... in the order a "
                             "receiver gets them, and each image's appendix carries the event's identity; name "
                             "the pulse id data with pulse_id_field instead")
        return data


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


def _scalar(value: Any) -> Any:
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()


class SimplonBinarySerializer(Serializer):
    payload_format = PayloadFormat.SIMPLON
    one_message_per_event = True

    def __init__(self, config: SimplonBinarySerializerConfig, context: RunContext) -> None:
        super().__init__(config, context)
        self.config: SimplonBinarySerializerConfig = config
        self._images_sent = 0

    def _check_names(self, batch: Batch) -> None:
        cfg = self.config
        for name in (cfg.image, cfg.pulse_id_field, cfg.timestamp_field):
            if name is not None and name not in batch:
                raise KeyError(f"SimplonBinarySerializer needs data {name!r} but the batch has only "
                               f"{', '.join(map(repr, sorted(batch))) or 'no data'}")

    def header_facts(self, first: Batch) -> dict[str, Any]:
        self._check_names(first)
        images = _as_images(self.config.image, np.asarray(first[self.config.image]))
        frame_time = None
        if self.config.timestamp_field is not None and len(images) > 1:
            times = np.array([_nanoseconds(t) for t in first[self.config.timestamp_field]], dtype=np.int64)
            spacing = np.diff(times)
            if len(spacing) and (spacing > 0).all():
                frame_time = float(np.median(spacing)) / 1e9
        return ImageFacts(x=images.shape[2], y=images.shape[1], dtype=images.dtype.name,
                          frame_time_s=frame_time).to_dict()

    def stream_header(self, start: StreamStart | None = None) -> list[Message]:
        cfg = self.config
        start = start or StreamStart()
        info = SeriesInfo(
            series=cfg.series, detail=cfg.header_detail, events=start.events,
            image=ImageFacts.from_dict(start.facts), count_time_s=cfg.exposure_time_ns / 1e9,
            compression="bslz4" if cfg.encoding == "bslz4" else "none",
            start_time=self.context.options.get("start_time"), source_identifier=self.context.source_identifier,
            nranks=self.context.nranks,
            data_names={"image": cfg.image, "pulse_id_field": cfg.pulse_id_field,
                        "timestamp_field": cfg.timestamp_field},
            user=dict(cfg.detector_config))
        return [header_message(info)]

    def stream_footer(self) -> list[Message]:
        return [[json_part({"htype": "dseries_end-1.0", "series": self.config.series})]]

    def serialize(self, batch: Batch, sequence: int) -> list[Message]:
        cfg = self.config
        self._check_names(batch)
        images = _as_images(cfg.image, np.asarray(batch[cfg.image]))
        if cfg.encoding == "bslz4":
            blobs = bitshuffle_lz4.encode_stack(images)
        else:
            blobs = [image.tobytes() for image in images]
        y, x = images.shape[1:]
        described = {"htype": "dimage_d-1.0", "shape": [x, y], "type": images.dtype.name,
                     "encoding": encoding_name(cfg.encoding, images.dtype)}
        indices = getattr(batch, "indices", None)
        messages: list[Message] = []
        for index, blob in enumerate(blobs):
            event = int(indices[index]) if indices is not None and indices[index] >= 0 else None
            start = (_nanoseconds(batch[cfg.timestamp_field][index]) if cfg.timestamp_field
                     else time.time_ns())
            message = [
                json_part({"htype": "dimage-1.0", "series": cfg.series, "frame": self._frame(event),
                       "hash": hashlib.md5(blob).hexdigest()}),
                json_part({**described, "size": len(blob)}),
                blob,
                json_part({"htype": "dconfig-1.0", "start_time": start, "stop_time": start + cfg.exposure_time_ns,
                       "real_time": cfg.exposure_time_ns}),
            ]
            if cfg.image_appendix:
                message.append(json_part(self._identity(batch, index, event)))
            messages.append(message)
            self._images_sent += 1
        return messages

    def _frame(self, event: int | None) -> int:
        """The event's global index; without one, a number unique across ranks."""
        if event is not None:
            return event
        return self.context.rank + self.context.nranks * self._images_sent

    def _identity(self, batch: Batch, index: int, event: int | None) -> dict[str, Any]:
        identity: dict[str, Any] = {"event": event, "rank": self.context.rank}
        if self.config.pulse_id_field is not None:
            identity["pulse_id"] = _scalar(batch[self.config.pulse_id_field][index])
        if self.config.timestamp_field is not None:
            identity["timestamp_ns"] = _nanoseconds(batch[self.config.timestamp_field][index])
        return identity


class FrameRenumbering:
    """Gives SIMPLON images the frame ids 0, 1, 2... in the order they are sent, which DECTRIS receivers require.

    Call it with each outgoing message's parts (bytes or zmq.Frame), in sending order, from one thread at a
    time; image messages come back with a new first part, every other message unchanged.
    """

    def __init__(self) -> None:
        self.next_frame = 0

    def __call__(self, parts: list) -> list:
        first = bytes(memoryview(parts[0]))
        if not first.startswith(IMAGE_PREFIX):
            return parts
        image = json.loads(first)
        image["frame"] = self.next_frame
        self.next_frame += 1
        return [json_part(image), *parts[1:]]


class SimplonError(ValueError):
    """The frames are not a valid SIMPLON v1 message."""


def _header(first: dict[str, Any], frames: list[bytes]) -> dict[str, Any]:
    detail = first.get("header_detail")
    config = json.loads(frames[1]) if detail != "none" and len(frames) > 1 else None
    tables = {}
    if detail == "all":
        for described, blob in zip(frames[2::2], frames[3::2], strict=False):
            table = json.loads(described)
            x, y = table["shape"]
            tables[table["htype"]] = np.frombuffer(blob, dtype=np.dtype(table["type"]).newbyteorder("<")).reshape(y, x)
    return {**first, "config": config, "tables": tables}


def decode(frames: list[bytes]) -> dict[str, Any]:
    """One SIMPLON message -> dict: ``htype`` plus its fields; for images also ``image`` (y, x array) and
    ``appendix`` (the event's identity, or None); for headers ``config`` and ``tables`` (``all``)."""
    if not frames:
        raise SimplonError("empty message")
    try:
        first = json.loads(frames[0])
    except ValueError as exc:
        raise SimplonError(f"first part is not JSON: {exc}") from exc
    htype = first.get("htype") if isinstance(first, dict) else None
    if htype == "dheader-1.0":
        return _header(first, frames)
    if htype == "dseries_end-1.0":
        return first
    if htype != IMAGE_HTYPE:
        raise SimplonError(f"unknown htype {htype!r} (expected dheader-1.0, dimage-1.0 or dseries_end-1.0)")
    if len(frames) < 4:
        raise SimplonError(f"an image message has 4 or 5 parts, got {len(frames)}")
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
    appendix = json.loads(frames[4]) if len(frames) > 4 else None
    return {**first, "image": image, "type": described["type"], "encoding": described["encoding"],
            "start_time": timing["start_time"], "stop_time": timing["stop_time"], "real_time": timing["real_time"],
            "appendix": appendix}


register("serializers", Component(SimplonBinarySerializerConfig, SimplonBinarySerializer))
