"""The SIMPLON v1 series header (``dheader-1.0``) as a DECTRIS detector sends it, filled from a run.

A DECTRIS receiver arms on this header: it reads the detector configuration part (part 2) and refuses a
series whose configuration lacks what a detector always sends. So the configuration is built like a
detector's own, from what the streamer knows when the series starts:

* from the run: ``nimages`` = the run's event count (``ntrigger`` 1, ``trigger_mode`` ``exts``: one
  external trigger series), ``data_collection_date`` = the run's start, ``count_time`` = the exposure;
* from the first image of the run (``ImageFacts``, gathered from whichever rank has one): the image size,
  its bit depth, and ``frame_time`` from the spacing of the event timestamps;
* the user's ``detector_config``, whose values win over all of the above.

``basic`` is that configuration; ``all`` adds the rest of what LCLStream knows about the series (source
identifier, data names, rank count) and parts 3-8 as SIMPLON defines them: flatfield, pixel mask and
count-rate table. The data carries none of those corrections (the ``*_applied`` keys say false), so the
tables are neutral: ones, zeros (no masked pixel), and an identity table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: What every DECTRIS detector sends in a ``basic`` header and receivers rely on to arm.
REQUIRED_KEYS = ("nimages", "ntrigger", "trigger_mode", "x_pixels_in_detector", "y_pixels_in_detector",
                 "bit_depth_image", "count_time", "frame_time")
DISTRIBUTION = "airflow-provider-lclstream"


@dataclass(frozen=True)
class ImageFacts:
    """What the first image of a run tells the header: its size, pixel type, and the pulse spacing."""

    x: int
    y: int
    dtype: str
    frame_time_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "dtype": self.dtype, "frame_time_s": self.frame_time_s}

    @classmethod
    def from_dict(cls, facts: dict[str, Any]) -> ImageFacts | None:
        return cls(**facts) if facts else None


@dataclass(frozen=True)
class SeriesInfo:
    """Everything the header is made from (the serializer's options and the run's facts)."""

    series: int
    detail: str
    events: int | None
    image: ImageFacts | None
    count_time_s: float
    compression: str
    start_time: float | None
    source_identifier: str
    nranks: int
    data_names: dict[str, str | None]
    user: dict[str, Any]


def software_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def _date(start_time: float | None) -> str:
    moment = datetime.now(UTC) if start_time is None else datetime.fromtimestamp(start_time, UTC)
    return moment.isoformat(timespec="milliseconds")


def basic_config(info: SeriesInfo) -> dict[str, Any]:
    """The detector configuration part a DECTRIS detector sends with ``header_detail: basic``."""
    image = info.image
    if image is None:
        log.warning("SIMPLON header: no rank has an image, so the header gives the image size as 0 x 0 "
                    "unless detector_config sets it")
    bits = np.dtype(image.dtype).itemsize * 8 if image else 0
    frame_time = image.frame_time_s if image and image.frame_time_s else info.count_time_s
    config: dict[str, Any] = {
        "nimages": info.events if info.events is not None else 0,
        "ntrigger": 1,
        "trigger_mode": "exts",
        "x_pixels_in_detector": image.x if image else 0,
        "y_pixels_in_detector": image.y if image else 0,
        "bit_depth_image": bits,
        "bit_depth_readout": bits,
        "count_time": info.count_time_s,
        "frame_time": frame_time,
        "compression": info.compression,
        "description": f"LCLStream {info.source_identifier}",
        "software_version": software_version(),
        "data_collection_date": _date(info.start_time),
        "nframes_sum": 1,
        "auto_summation": False,
        "countrate_correction_applied": False,
        "flatfield_correction_applied": False,
        "pixel_mask_applied": False,
        "virtual_pixel_correction_applied": False,
    }
    _warn_on_contradiction(config, info.user)
    return {**config, **info.user}


def all_config(info: SeriesInfo) -> dict[str, Any]:
    """``basic`` plus the rest of what LCLStream knows about the series (user values still win)."""
    rest = {"source_identifier": info.source_identifier, "number_of_excluded_pixels": 0,
            "lclstream_ranks": info.nranks,
            **{f"lclstream_{role}": name for role, name in info.data_names.items()}}
    return {**basic_config(info), **rest, **info.user}


def _warn_on_contradiction(config: dict[str, Any], user: dict[str, Any]) -> None:
    for key in ("x_pixels_in_detector", "y_pixels_in_detector", "bit_depth_image"):
        if key in user and config[key] and user[key] != config[key]:
            log.warning("SIMPLON header: detector_config sets %s = %r but the images have %r; the header "
                        "sends %r", key, user[key], config[key], user[key])


def json_part(obj: dict[str, Any]) -> bytes:
    """A SIMPLON JSON part: compact UTF-8 JSON."""
    return json.dumps(obj, separators=(",", ":")).encode()


def _table(htype: str, array: np.ndarray) -> list[bytes]:
    rows, columns = array.shape
    return [json_part({"htype": htype, "shape": [columns, rows], "type": array.dtype.name}),
            np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()]


def neutral_tables(x: int, y: int) -> list[bytes]:
    """Parts 3-8 of an ``all`` header: flatfield (ones), pixel mask (none masked), identity count-rate table."""
    return [*_table("dflatfield-1.0", np.ones((y, x), dtype=np.float32)),
            *_table("dpixelmask-1.0", np.zeros((y, x), dtype=np.uint32)),
            *_table("dcountrate_table-1.0", np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32))]


def header_message(info: SeriesInfo) -> list[bytes]:
    """The whole ``dheader-1.0`` multi-part message for ``info.detail`` (none, basic or all)."""
    parts = [json_part({"htype": "dheader-1.0", "series": info.series, "header_detail": info.detail})]
    if info.detail == "basic":
        parts.append(json_part(basic_config(info)))
    elif info.detail == "all":
        config = all_config(info)
        parts.append(json_part(config))
        parts.extend(neutral_tables(int(config["x_pixels_in_detector"]), int(config["y_pixels_in_detector"])))
    return parts
