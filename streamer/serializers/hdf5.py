"""HDF5Serializer: each batch becomes one HDF5 file image built in memory (no temp files).

Every configured field is written to the dataset path that ``fields`` gives, with the batch as the
first axis and one event per chunk, through the chosen compression filter (hdf5plugin provides
bitshuffle+LZ4, zstd and zfp). The root group carries the attributes ``source_identifier``,
``rank``, ``batch_sequence`` and ``event_count``; each dataset carries ``lclstream_name`` (the data
name) so ``decode`` returns the same dict of arrays the serializer was given.

The image is written through an ``io.BytesIO``: measured about twice as fast as h5py's ``core``
driver plus ``get_file_image()`` on 32 MiB batches (see bench/streamer_bench.py).
"""

from __future__ import annotations

import io
from typing import Any, Literal

import h5py
import hdf5plugin
import numpy as np
from pydantic import Field, model_validator

from streamer.base import Batch, ComponentConfig, Message, RunContext, Serializer
from streamer.envelope import PayloadFormat
from streamer.registry import Component, register

Compression = Literal["none", "gzip", "lzf", "bitshuffle_lz4", "zstd", "zfp"]

# compression -> (lowest, highest) level allowed; absent: the filter takes no level
LEVELS: dict[str, tuple[int, int]] = {"gzip": (0, 9), "zstd": (1, 22), "zfp": (1, 64)}
ZFP_DTYPES = (np.float32, np.float64, np.int32, np.int64)
NAME_ATTR = "lclstream_name"
UNICODE_ATTR = "lclstream_unicode"
ROOT_ATTRS = ("source_identifier", "rank", "batch_sequence", "event_count")


class HDF5SerializerConfig(ComponentConfig):
    type: Literal["HDF5Serializer"]
    fields: dict[str, str] = Field(
        min_length=1,
        description="data name -> dataset path in the file, e.g. {'jungfrau': '/entry/data/data'}",
    )
    compression: Compression = Field("none", description="filter applied to every non-scalar field")
    compression_level: int | None = Field(
        None,
        description="gzip 0-9 (default 4), zstd 1-22 (default 3); zfp: bits of precision 1-64 "
        "(lossy; default: reversible/lossless); not allowed for none, lzf, bitshuffle_lz4",
    )

    @model_validator(mode="after")
    def _check(self) -> HDF5SerializerConfig:
        for name, path in self.fields.items():
            if not path.strip("/"):
                raise ValueError(f"fields.{name}: dataset path {path!r} is empty")
        paths = [p.strip("/") for p in self.fields.values()]
        if len(set(paths)) != len(paths):
            raise ValueError("fields: two data names map to the same dataset path")
        if self.compression_level is not None:
            if self.compression not in LEVELS:
                raise ValueError(f"compression_level is not used by compression {self.compression!r}; "
                                 f"only {', '.join(LEVELS)} take a level")
            low, high = LEVELS[self.compression]
            if not low <= self.compression_level <= high:
                raise ValueError(f"compression_level {self.compression_level} is out of range for "
                                 f"{self.compression} (allowed {low}..{high})")
        return self


def filter_options(compression: str, level: int | None) -> dict[str, Any]:
    """Keyword arguments for ``create_dataset`` that apply one compression filter."""
    if compression == "none":
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4 if level is None else level}
    if compression == "lzf":
        return {"compression": "lzf"}
    if compression == "bitshuffle_lz4":
        return dict(hdf5plugin.Bitshuffle(cname="lz4"))
    if compression == "zstd":
        return dict(hdf5plugin.Zstd(clevel=3 if level is None else level))
    if compression == "zfp":
        zfp = hdf5plugin.Zfp(reversible=True) if level is None else hdf5plugin.Zfp(precision=level)
        return dict(zfp)
    raise ValueError(f"unknown compression {compression!r}")


def _storable(name: str, array: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return an array h5py can store, and whether it was unicode text (stored as UTF-8 bytes)."""
    if array.dtype.kind == "U":
        return np.char.encode(array, "utf-8"), True
    if array.dtype.kind == "O":
        raise TypeError(f"field {name!r} holds Python objects (dtype object); HDF5Serializer stores "
                        "numeric arrays and text only")
    return array, False


class HDF5Serializer(Serializer):
    payload_format = PayloadFormat.HDF5

    def __init__(self, config: HDF5SerializerConfig, context: RunContext) -> None:
        super().__init__(config, context)
        self.config: HDF5SerializerConfig = config
        self._filter = filter_options(config.compression, config.compression_level)

    def serialize(self, batch: Batch, sequence: int) -> list[Message]:
        return [self.file_image(batch, sequence)]

    def file_image(self, batch: Batch, sequence: int) -> bytes:
        missing = [name for name in self.config.fields if name not in batch]
        if missing:
            raise KeyError(f"HDF5Serializer.fields names {', '.join(map(repr, missing))} but the batch has only "
                           f"{', '.join(map(repr, sorted(batch))) or 'no data'}")
        event_count = len(next(iter(batch.values()))) if batch else 0
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as f:
            f.attrs["source_identifier"] = self.context.source_identifier
            f.attrs["rank"] = self.context.rank
            f.attrs["batch_sequence"] = sequence
            f.attrs["event_count"] = event_count
            for name, path in self.config.fields.items():
                self._write_field(f, name, path, np.asarray(batch[name]))
        return buffer.getvalue()

    def _write_field(self, f: h5py.File, name: str, path: str, array: np.ndarray) -> None:
        if array.ndim == 0:
            raise ValueError(f"field {name!r} is a scalar; batches must have the batch as first axis")
        data, unicode = _storable(name, array)
        options: dict[str, Any] = {}
        if data.ndim > 1 and data.shape[0] > 0 and data.dtype.kind != "S":
            options = {"chunks": (1, *data.shape[1:]), **self._filter}
            if self.config.compression == "zfp" and data.dtype.type not in ZFP_DTYPES:
                raise TypeError(f"field {name!r} has dtype {data.dtype}; zfp compresses only "
                                "float32, float64, int32 and int64 (choose another compression)")
        dataset = f.create_dataset(path, data=data, **options)
        dataset.attrs[NAME_ATTR] = name
        if unicode:
            dataset.attrs[UNICODE_ATTR] = True


def decode(data: bytes | memoryview) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read an HDF5 file image: (data name -> array, root attributes)."""
    fields: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(bytes(data)), "r") as f:
        attrs = {key: _plain(value) for key, value in f.attrs.items()}

        def visit(path: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                name = obj.attrs.get(NAME_ATTR, path)
                name = name.decode() if isinstance(name, bytes) else str(name)
                array = obj[()]
                if obj.attrs.get(UNICODE_ATTR, False):
                    array = np.char.decode(array, "utf-8")
                fields[name] = array

        f.visititems(visit)
    return fields, attrs


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


register("serializers", Component(HDF5SerializerConfig, HDF5Serializer))
