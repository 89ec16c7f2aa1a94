"""Multi-part messages (SIMPLON) as one byte string, for transports and files that carry single frames.

Layout: for each frame, its length as u64 little endian, then its bytes. The ZeroMQ handlers send the
frames as real multi-part messages instead; NNG and files use this packing.
"""

from __future__ import annotations

import struct

_LENGTH = struct.Struct("<Q")


def pack_frames(frames: list[bytes]) -> bytes:
    out = bytearray()
    for frame in frames:
        out += _LENGTH.pack(len(frame))
        out += frame
    return bytes(out)


def unpack_frames(data: bytes | memoryview) -> list[bytes]:
    view = memoryview(data)
    frames, offset = [], 0
    while offset < len(view):
        if offset + _LENGTH.size > len(view):
            raise ValueError(f"truncated frame length at byte {offset}")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + length > len(view):
            raise ValueError(f"frame at byte {offset} claims {length} bytes but only {len(view) - offset} remain")
        frames.append(bytes(view[offset:offset + length]))
        offset += length
    return frames
