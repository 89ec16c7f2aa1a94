"""``decode_payload``: turn any serializer's payload back into data, whatever the format."""

from __future__ import annotations

from typing import Any

import numpy as np

from streamer.envelope import PayloadFormat
from streamer.serializers import hdf5, msgpack_events, simplon
from streamer.serializers.frames import unpack_frames


def decode_payload(payload: bytes | memoryview, fmt: PayloadFormat) -> list[dict[str, Any]]:
    """Decode one message payload into a list of dicts of arrays and scalars.

    HDF5: one dict per message (the batch's fields, batch as first axis; ``hdf5.decode`` also gives the
    attributes). MSGPACK: one dict per event. SIMPLON: one dict per message (header, image or series end;
    the frames packed by ``streamer.serializers.frames.pack_frames``). RAW: ``{"raw": uint8 array}``.
    """
    if fmt is PayloadFormat.HDF5:
        return [hdf5.decode(payload)[0]]
    if fmt is PayloadFormat.MSGPACK:
        return [msgpack_events.decode(payload)]
    if fmt is PayloadFormat.SIMPLON:
        return [simplon.decode(unpack_frames(payload))]
    if fmt is PayloadFormat.RAW:
        return [{"raw": np.frombuffer(payload, dtype=np.uint8)}]
    raise ValueError(f"unknown payload format {fmt!r}")
