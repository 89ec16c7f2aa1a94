"""Message accounting envelope shared by producers (streamer) and consumers (lclstream client).

Every message a producer pushes into a stream carries a fixed 32-byte header so that a consumer can
prove it received everything or say exactly what is missing, without knowing the payload format.
The buffer never looks inside it.

Layout (little endian)::

    magic   4s   b"LCLS"
    version u8   1
    kind    u8   0 = data, 1 = end of this rank's stream
    fmt     u8   payload format (see PayloadFormat)
    flags   u8   reserved, 0
    rank    u32  producer rank
    nranks  u32  number of producer ranks in this stream
    seq     u64  per-rank message sequence number, starting at 0 (for kind=end: equals count)
    count   u64  data: events in this message; end: number of data messages this rank sent
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC = b"LCLS"
VERSION = 1
_HEADER = struct.Struct("<4sBBBBIIQQ")
HEADER_SIZE = _HEADER.size  # 32


class MessageKind(IntEnum):
    DATA = 0
    END = 1


class PayloadFormat(IntEnum):
    RAW = 0
    HDF5 = 1
    MSGPACK = 2
    SIMPLON = 3


class EnvelopeError(ValueError):
    """The bytes are not an LCLStream envelope."""


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: MessageKind
    fmt: PayloadFormat
    rank: int
    nranks: int
    seq: int
    count: int

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, VERSION, self.kind, self.fmt, 0, self.rank, self.nranks, self.seq, self.count)


def pack_data(payload: bytes | memoryview, *, fmt: PayloadFormat, rank: int, nranks: int, seq: int,
              count: int) -> bytes:
    """Return header + payload for one data message."""
    return Envelope(MessageKind.DATA, fmt, rank, nranks, seq, count).pack() + bytes(payload)


def pack_end(*, rank: int, nranks: int, sent: int, fmt: PayloadFormat = PayloadFormat.RAW) -> bytes:
    """Return the end-of-stream marker of one rank, which says how many data messages it sent."""
    return Envelope(MessageKind.END, fmt, rank, nranks, sent, sent).pack()


def unpack(message: bytes | memoryview) -> tuple[Envelope, memoryview]:
    """Split a message into its envelope and a zero-copy view of the payload."""
    view = memoryview(message)
    if len(view) < HEADER_SIZE:
        raise EnvelopeError(f"message of {len(view)} bytes is shorter than the {HEADER_SIZE}-byte envelope")
    magic, version, kind, fmt, _flags, rank, nranks, seq, count = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise EnvelopeError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise EnvelopeError(f"envelope version {version} is not supported (expected {VERSION})")
    try:
        env = Envelope(MessageKind(kind), PayloadFormat(fmt), rank, nranks, seq, count)
    except ValueError as exc:
        raise EnvelopeError(str(exc)) from exc
    return env, view[HEADER_SIZE:]


class StreamLedger:
    """Tracks which (rank, seq) pairs a consumer received, and whether each rank's end was seen."""

    def __init__(self) -> None:
        self.nranks: int | None = None
        self.received: dict[int, set[int]] = {}
        self.expected: dict[int, int] = {}  # rank -> data messages that rank says it sent
        self.duplicates: list[tuple[int, int]] = []

    def record(self, env: Envelope) -> None:
        if self.nranks is None or env.nranks > self.nranks:
            self.nranks = env.nranks
        if env.kind is MessageKind.END:
            self.expected[env.rank] = env.count
            return
        seen = self.received.setdefault(env.rank, set())
        if env.seq in seen:
            self.duplicates.append((env.rank, env.seq))
        seen.add(env.seq)

    @property
    def messages(self) -> int:
        return sum(len(s) for s in self.received.values())

    def missing(self) -> dict[int, list[int] | None]:
        """Per rank: the sequence numbers not received, or None when the rank's end marker never came."""
        out: dict[int, list[int] | None] = {}
        for rank in range(self.nranks or 0):
            seen = self.received.get(rank, set())
            if rank not in self.expected:
                out[rank] = None
                continue
            gaps = [s for s in range(self.expected[rank]) if s not in seen]
            if gaps:
                out[rank] = gaps
        return out

    def complete(self) -> bool:
        return self.nranks is not None and not self.missing() and not self.duplicates

    def describe_gaps(self, limit: int = 20) -> list[str]:
        lines = []
        for rank, gaps in self.missing().items():
            if gaps is None:
                got = len(self.received.get(rank, ()))
                lines.append(f"rank {rank}: end of stream never received ({got} messages received)")
            else:
                shown = ", ".join(str(g) for g in gaps[:limit])
                more = f" and {len(gaps) - limit} more" if len(gaps) > limit else ""
                lines.append(f"rank {rank}: missing {len(gaps)} of {self.expected[rank]}: {shown}{more}")
        for rank, seq in self.duplicates[:limit]:
            lines.append(f"rank {rank}: sequence {seq} received more than once")
        return lines
