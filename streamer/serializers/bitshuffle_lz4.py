"""Bitshuffle+LZ4 blobs in the HDF5 framing DECTRIS streams use (``bs<bits>-lz4<``).

A blob is a 12-byte header (u64 big endian: uncompressed bytes; u32 big endian: block size in bytes)
followed by blocks, each a u32 big endian compressed length and an LZ4 block. That is exactly the chunk
the bitshuffle HDF5 filter writes, so the blobs are made and read through hdf5plugin's filter with h5py's
direct chunk I/O on an in-memory file: no extra compression library is needed.
"""

from __future__ import annotations

import io

import h5py
import hdf5plugin
import numpy as np


def _dataset(f: h5py.File, shape: tuple[int, ...], dtype: np.dtype) -> h5py.Dataset:
    return f.create_dataset("images", shape=shape, dtype=dtype, chunks=(1, *shape[1:]),
                            **hdf5plugin.Bitshuffle(cname="lz4"))


def encode_stack(images: np.ndarray) -> list[bytes]:
    """One bitshuffle+LZ4 blob per image of a stack (first axis = image)."""
    if images.shape[0] == 0:
        return []
    with h5py.File(io.BytesIO(), "w") as f:
        dataset = _dataset(f, images.shape, images.dtype)
        dataset[...] = images
        zeros = (0,) * (images.ndim - 1)
        return [dataset.id.read_direct_chunk((index, *zeros))[1] for index in range(images.shape[0])]


def decode_image(blob: bytes | memoryview, shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    """Decompress one blob into an array of ``shape`` (row-major, e.g. (y, x))."""
    with h5py.File(io.BytesIO(), "w") as f:
        dataset = _dataset(f, (1, *shape), np.dtype(dtype))
        dataset.id.write_direct_chunk((0,) * (len(shape) + 1), bytes(blob))
        return dataset[0]
