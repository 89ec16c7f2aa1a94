"""MsgpackSerializer: one MessagePack map per event, in the layout CrystFEL reads (``--data-format=msgpack``).

Each event becomes a map keyed by msgpack key (``fields`` maps data names to keys; default: every datum
under its own name). Arrays become NumPy-style maps ``{"type": "<i4", "shape": [ss, fs], "data": <bin>}``;
CrystFEL reads 2-D images of type ``<i4`` or ``<f4`` only, so with ``array_type: crystfel`` (the default)
integer arrays are sent as ``<i4`` and floating ones as ``<f4``, and a panels x ss x fs stack is sent as
one (panels*ss, fs) slab with its full shape kept under ``nd_shape``. Numbers (beam energy, detector
distance...) become msgpack numbers that a geometry file can name (``photon_energy = beam_energy eV``).

CrystFEL looks keys up by comparing only the length of the key in the map, so a key that is a prefix of
another key (``detector`` and ``detector_data``) could be found instead of it: such keys are rejected.
"""

from __future__ import annotations

from typing import Any, Literal

import msgpack
import numpy as np
from pydantic import Field, field_validator

from streamer.base import Batch, ComponentConfig, Message, RunContext, Serializer
from streamer.envelope import PayloadFormat
from streamer.registry import Component, register

ARRAY_KEYS = frozenset({"type", "shape", "data"})


class MsgpackSerializerConfig(ComponentConfig):
    type: Literal["MsgpackSerializer"]
    fields: dict[str, str] | None = Field(
        None, description="data name -> msgpack key (e.g. {jungfrau: detector_data, photon_energy: beam_energy});"
        " default: every datum under its own name")
    array_type: Literal["crystfel", "keep"] = Field(
        "crystfel", description="crystfel: integer arrays as <i4, floating as <f4, 2-D; keep: original dtype")

    @field_validator("fields")
    @classmethod
    def _keys(cls, fields: dict[str, str] | None) -> dict[str, str] | None:
        if fields is not None:
            if not fields:
                raise ValueError("must name at least one datum, or be left out to send every datum")
            check_keys(list(fields.values()))
        return fields


def check_keys(keys: list[str]) -> None:
    for key in keys:
        if not key:
            raise ValueError("msgpack keys must not be empty")
        for other in keys:
            if other != key and other.startswith(key):
                raise ValueError(f"msgpack key {key!r} is a prefix of {other!r}; CrystFEL's lookup would "
                                 f"confuse them, rename one")


def _array_map(array: np.ndarray, array_type: str) -> dict[str, Any]:
    if array_type == "crystfel":
        if array.dtype.kind in "uib":
            array = array.astype("<i4", copy=False)
        elif array.dtype.kind == "f":
            array = array.astype("<f4", copy=False)
    if array.dtype.kind not in "uifb":
        raise TypeError(f"dtype {array.dtype} cannot be sent as a msgpack array")
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    out: dict[str, Any] = {"type": array.dtype.str, "shape": list(array.shape), "data": array.tobytes()}
    if array_type == "crystfel" and array.ndim > 2:
        out["shape"] = [int(np.prod(array.shape[:-1])), array.shape[-1]]
        out["nd_shape"] = list(array.shape)
    return out


def _value(value: Any, array_type: str) -> Any:
    if isinstance(value, np.ndarray) and value.ndim > 0:
        if value.dtype.kind == "U":
            return value.tolist()
        return _array_map(value, array_type)
    if isinstance(value, np.ndarray | np.generic):
        return value.item()
    return value


class MsgpackSerializer(Serializer):
    payload_format = PayloadFormat.MSGPACK
    one_message_per_event = True

    def __init__(self, config: MsgpackSerializerConfig, context: RunContext) -> None:
        super().__init__(config, context)
        self.config: MsgpackSerializerConfig = config
        self._checked_keys = config.fields is not None

    def serialize(self, batch: Batch, sequence: int) -> list[Message]:
        fields = self.config.fields or {name: name for name in batch}
        missing = [name for name in fields if name not in batch]
        if missing:
            raise KeyError(f"MsgpackSerializer.fields names {', '.join(map(repr, missing))} but the batch has "
                           f"only {', '.join(map(repr, sorted(batch))) or 'no data'}")
        if not self._checked_keys:
            check_keys(list(fields.values()))
            self._checked_keys = True
        count = len(next(iter(batch.values()))) if batch else 0
        packer = msgpack.Packer(use_bin_type=True)
        return [
            packer.pack({key: _value(batch[name][index], self.config.array_type) for name, key in fields.items()})
            for index in range(count)
        ]


def decode(data: bytes | memoryview) -> dict[str, Any]:
    """One event map -> dict of arrays and numbers (arrays restored to their full shape)."""
    obj = msgpack.unpackb(bytes(data), raw=False)
    if isinstance(obj, list):  # CrystFEL also accepts an array of maps and uses the first
        obj = obj[0] if obj else {}
    if not isinstance(obj, dict):
        raise ValueError(f"expected a msgpack map, got {type(obj).__name__}")
    return {key: _decode_value(value) for key, value in obj.items()}


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and ARRAY_KEYS <= value.keys():
        shape = value.get("nd_shape", value["shape"])
        return np.frombuffer(value["data"], dtype=np.dtype(value["type"])).reshape(shape)
    return value


register("serializers", Component(MsgpackSerializerConfig, MsgpackSerializer))
