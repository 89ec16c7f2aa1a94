"""A DECTRIS-style SIMPLON v1 receiver written for the tests from the published stream description, not
from the project's decoder: it shares no code with ``streamer.serializers``.

What it holds a sender to, as receivers written for DECTRIS detectors do:

* it arms only on a ``dheader-1.0`` whose detail is ``basic`` or ``all`` and whose configuration part
  has the keys a detector always sends (``REQUIRED``), with sensible types; ``all`` must bring the
  flatfield, pixel mask and count-rate table parts, the first two of the detector's size;
* every image must belong to the armed series and carry the next frame id (0, 1, 2...); its
  ``dimage_d-1.0`` must match the header's size and bit depth, its md5 must match, its data part must
  decode (``<`` raw little endian, or ``bsN-lz4<``: bitshuffle + LZ4 blocks, decoded here in numpy and
  pure Python);
* ``dseries_end-1.0`` of the series ends it; a known ``nimages * ntrigger`` must equal the frames seen.

On the first violation it stops, records the reason in ``refused`` and closes its socket: it goes away,
as a real receiver that raises would.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
from typing import Any

import numpy as np
import zmq

REQUIRED = {"nimages": int, "ntrigger": int, "trigger_mode": str, "x_pixels_in_detector": int,
            "y_pixels_in_detector": int, "bit_depth_image": int, "count_time": (int, float),
            "frame_time": (int, float)}
TRIGGER_MODES = {"ints", "inte", "exts", "exte"}
TABLES = ("dflatfield-1.0", "dpixelmask-1.0", "dcountrate_table-1.0")


class Refused(Exception):
    """The stream broke a rule of the SIMPLON v1 description."""


def _extended(source: bytes, i: int, value: int) -> tuple[int, int]:
    """An LZ4 length: 15 in the token means more bytes follow, added up until one is not 255."""
    if value == 15:
        while True:
            extra = source[i]
            i += 1
            value += extra
            if extra != 255:
                break
    return value, i


def lz4_block(source: bytes, size: int) -> bytes:
    """Decompress one LZ4 block (the LZ4 block format: token, literals, 2-byte offset, match length)."""
    out = bytearray()
    i = 0
    while i < len(source):
        token = source[i]
        literals, i = _extended(source, i + 1, token >> 4)
        out += source[i:i + literals]
        i += literals
        if i >= len(source):
            break
        offset = source[i] | source[i + 1] << 8
        match, i = _extended(source, i + 2, token & 15)
        match += 4
        start = len(out) - offset
        if offset >= match:
            out += out[start:start + match]
        else:  # the match overlaps what it writes: copy byte by byte
            for k in range(match):
                out.append(out[start + k])
    if len(out) != size:
        raise Refused(f"LZ4 block gave {len(out)} bytes, expected {size}")
    return bytes(out)


def bit_unshuffle(block: bytes, itemsize: int) -> bytes:
    """Undo bitshuffle on ``block`` (elements a multiple of 8): row b*8+k holds bit k of byte b of each element."""
    count = len(block) // itemsize
    rows = np.frombuffer(block, dtype=np.uint8).reshape(8 * itemsize, count // 8)
    bits = np.unpackbits(rows, axis=1, bitorder="little")  # (8 * itemsize, count)
    return np.packbits(bits.T, axis=1, bitorder="little").tobytes()  # (count, itemsize)


def bslz4(blob: bytes, itemsize: int) -> bytes:
    """A ``bsN-lz4<`` data part: u64 BE total bytes, u32 BE block bytes, then blocks of u32 BE length + LZ4;
    the last (count % 8) elements follow uncompressed."""
    total, block_bytes = struct.unpack(">QI", blob[:12])
    out, i = bytearray(), 12
    whole = total // itemsize // 8 * 8 * itemsize  # bytes that went through bitshuffle
    while len(out) < whole:
        size = min(block_bytes, whole - len(out)) // (8 * itemsize) * 8 * itemsize
        (length,) = struct.unpack(">I", blob[i:i + 4])
        i += 4
        out += bit_unshuffle(lz4_block(blob[i:i + length], size), itemsize)
        i += length
    out += blob[i:i + total - whole]
    if len(out) != total:
        raise Refused(f"bitshuffle/LZ4 data gave {len(out)} bytes, its header says {total}")
    return bytes(out)


class SimplonReceiver:
    """A PULL socket reading one SIMPLON series in a thread, until the series end, a refusal or a deadline."""

    def __init__(self, url: str, *, bind: bool = False, deadline_s: float = 150, rcvhwm: int = 1000) -> None:
        self.url, self.bind, self.deadline_s, self.rcvhwm = url, bind, deadline_s, rcvhwm
        self.config: dict[str, Any] | None = None
        self.detail: str | None = None
        self.tables: dict[str, np.ndarray] = {}
        self.series: int | None = None
        self.frames: list[int] = []
        self.images: list[np.ndarray] = []
        self.appendices: list[dict[str, Any] | None] = []
        self.ended = False
        self.refused: str | None = None
        self._context = zmq.Context()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="simplon-receiver")

    def __enter__(self) -> SimplonReceiver:
        self._thread.start()
        assert self._ready.wait(10), "receiver socket not ready"
        return self

    def __exit__(self, *exc: object) -> None:
        self.join()
        self._context.term()

    def join(self) -> SimplonReceiver:
        self._thread.join(timeout=self.deadline_s + 10)
        return self

    def _run(self) -> None:
        pull = self._context.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.setsockopt(zmq.RCVHWM, self.rcvhwm)
        (pull.bind if self.bind else pull.connect)(self.url)
        self._ready.set()
        deadline = time.monotonic() + self.deadline_s
        try:
            while time.monotonic() < deadline and not self.ended:
                if pull.poll(200):
                    self.take(pull.recv_multipart())
        except Refused as exc:
            self.refused = str(exc)
        finally:
            pull.close()  # refused or done: the receiver goes away

    # -- the rules -------------------------------------------------------------------------------
    def take(self, parts: list[bytes]) -> None:
        first = _json(parts[0], "part 1")
        htype = first.get("htype")
        if self.config is None:
            if htype != "dheader-1.0":
                raise Refused(f"not armed: expected dheader-1.0 first, got {htype!r}")
            self.arm(first, parts)
        elif htype == "dimage-1.0":
            self.image(first, parts)
        elif htype == "dseries_end-1.0":
            self.end(first)
        else:
            raise Refused(f"unexpected message {htype!r} while armed")

    def arm(self, header: dict[str, Any], parts: list[bytes]) -> None:
        detail = header.get("header_detail")
        if detail not in ("basic", "all"):
            raise Refused(f"cannot arm on header_detail {detail!r}: the detector configuration is needed")
        if not isinstance(header.get("series"), int) or len(parts) < 2:
            raise Refused("dheader-1.0 needs an integer series and a configuration part")
        config = _json(parts[1], "configuration part")
        for key, kind in REQUIRED.items():
            if key not in config:
                raise Refused(f"missing field {key!r}")
            if not isinstance(config[key], kind) or isinstance(config[key], bool):
                raise Refused(f"field {key!r} has type {type(config[key]).__name__}")
        if config["trigger_mode"] not in TRIGGER_MODES or config["ntrigger"] < 1 or config["nimages"] < 0:
            raise Refused(f"bad trigger settings: {config['trigger_mode']!r}, ntrigger {config['ntrigger']}, "
                          f"nimages {config['nimages']}")
        if config["bit_depth_image"] not in (8, 16, 32) or config["count_time"] <= 0 or \
                config["frame_time"] < config["count_time"]:
            raise Refused("bad bit depth or timing in the configuration part")
        if detail == "all":
            self.tables = self._tables(parts[2:], config)
        self.config, self.detail, self.series = config, detail, header["series"]

    def _tables(self, parts: list[bytes], config: dict[str, Any]) -> dict[str, np.ndarray]:
        if len(parts) != 2 * len(TABLES):
            raise Refused(f"header_detail all needs {2 * len(TABLES)} more parts, got {len(parts)}")
        tables = {}
        for htype, (described, blob) in zip(TABLES, zip(parts[::2], parts[1::2], strict=True), strict=True):
            table = _json(described, htype)
            if table.get("htype") != htype:
                raise Refused(f"expected {htype}, got {table.get('htype')!r}")
            x, y = table["shape"]
            if htype != "dcountrate_table-1.0" and (x, y) != (config["x_pixels_in_detector"],
                                                          config["y_pixels_in_detector"]):
                raise Refused(f"{htype} is {x} x {y}, the detector {config['x_pixels_in_detector']} x "
                              f"{config['y_pixels_in_detector']}")
            tables[htype] = np.frombuffer(blob, dtype=np.dtype(table["type"]).newbyteorder("<")).reshape(y, x)
        return tables

    def image(self, first: dict[str, Any], parts: list[bytes]) -> None:
        assert self.config is not None
        expected = len(self.frames)
        if first.get("series") != self.series:
            raise Refused(f"image of series {first.get('series')!r} in series {self.series}")
        if first.get("frame") != expected:
            raise Refused(f"frame id {first.get('frame')!r} out of order: expected {expected}")
        if len(parts) not in (4, 5):
            raise Refused(f"an image has 4 parts (5 with the appendix), got {len(parts)}")
        described, blob, timing = _json(parts[1], "part 2"), parts[2], _json(parts[3], "part 4")
        if described.get("htype") != "dimage_d-1.0" or timing.get("htype") != "dconfig-1.0":
            raise Refused("image parts 2 and 4 must be dimage_d-1.0 and dconfig-1.0")
        if hashlib.md5(blob).hexdigest() != first.get("hash"):
            raise Refused(f"frame {expected}: md5 mismatch")
        x, y = described["shape"]
        if (x, y) != (self.config["x_pixels_in_detector"], self.config["y_pixels_in_detector"]):
            raise Refused(f"frame {expected} is {x} x {y}, the header says otherwise")
        dtype = np.dtype(described["type"]).newbyteorder("<")
        if dtype.itemsize * 8 != self.config["bit_depth_image"] or described["size"] != len(blob):
            raise Refused(f"frame {expected}: type {described['type']} or size disagrees with the header")
        encoding = described["encoding"]
        if encoding == "<":
            raw = blob
        elif encoding == f"bs{dtype.itemsize * 8}-lz4<":
            raw = bslz4(blob, dtype.itemsize)
        else:
            raise Refused(f"frame {expected}: encoding {encoding!r} not supported")
        self.images.append(np.frombuffer(raw, dtype=dtype).reshape(y, x))
        self.appendices.append(_json(parts[4], "appendix") if len(parts) == 5 else None)
        self.frames.append(first["frame"])

    def end(self, first: dict[str, Any]) -> None:
        assert self.config is not None
        if first.get("series") != self.series:
            raise Refused(f"series end of {first.get('series')!r} in series {self.series}")
        announced = self.config["nimages"] * self.config["ntrigger"]
        if announced and announced != len(self.frames):
            raise Refused(f"the header announced {announced} frames, the series had {len(self.frames)}")
        self.ended = True


def _json(part: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(part)
    except ValueError as exc:
        raise Refused(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Refused(f"{what} is not a JSON object")
    return value
