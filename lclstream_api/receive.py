"""Receiving a transfer: every message checked against the ledger, optionally written as files.

``pull(url, out_dir)`` is what ``lclstream pull`` runs. Each data message becomes one file
``rRANK-sSEQ.EXT`` holding the payload (an HDF5 file image is a readable ``.h5`` file). At the end
the ledger says whether every producer rank's sequence is complete, or exactly what is missing.
Several consumers may share one stream; then each sees only part of it, and their ledgers are
merged with :func:`merge_ledgers` to check the whole.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lclstream_api.progress import Progress
from lclstream_api.transport import Security, StreamTimeout, messages
from streamer.envelope import Envelope, EnvelopeError, MessageKind, PayloadFormat, StreamLedger, unpack

log = logging.getLogger("lclstream_api.receive")

EXTENSIONS = {PayloadFormat.RAW: "bin", PayloadFormat.HDF5: "h5", PayloadFormat.MSGPACK: "msgpack",
              PayloadFormat.SIMPLON: "simplon"}
_FILE = re.compile(r"^r(?P<rank>\d+)-s(?P<seq>\d+)\.(?P<ext>[a-z0-9]+)$")
LEDGER_FILE = "ledger.json"


def filename(rank: int, seq: int, fmt: PayloadFormat) -> str:
    return f"r{rank:04d}-s{seq:08d}.{EXTENSIONS[fmt]}"


def message_filename(env: Envelope) -> str:
    return filename(env.rank, env.seq, env.fmt)


def parse_filename(name: str) -> tuple[int, int, PayloadFormat] | None:
    match = _FILE.match(name)
    if not match:
        return None
    fmt = {ext: f for f, ext in EXTENSIONS.items()}.get(match["ext"])
    return (int(match["rank"]), int(match["seq"]), fmt) if fmt is not None else None


def write_atomic(path: Path, data: bytes | memoryview) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def ledger_to_json(ledger: StreamLedger) -> dict[str, Any]:
    return {"nranks": ledger.nranks, "expected": {str(r): n for r, n in ledger.expected.items()},
            "received": {str(r): sorted(s) for r, s in ledger.received.items()},
            "duplicates": [list(d) for d in ledger.duplicates]}


def ledger_from_json(data: dict[str, Any]) -> StreamLedger:
    ledger = StreamLedger()
    ledger.nranks = data.get("nranks")
    ledger.expected = {int(r): int(n) for r, n in data.get("expected", {}).items()}
    ledger.received = {int(r): set(s) for r, s in data.get("received", {}).items()}
    ledger.duplicates = [(int(a), int(b)) for a, b in data.get("duplicates", [])]
    return ledger


def merge_ledgers(ledgers: list[StreamLedger]) -> StreamLedger:
    """One ledger for consumers that shared a stream; a message seen by two of them is a duplicate."""
    merged = StreamLedger()
    for ledger in ledgers:
        if ledger.nranks is not None:
            merged.nranks = max(merged.nranks or 0, ledger.nranks)
        merged.expected.update(ledger.expected)
        merged.duplicates.extend(ledger.duplicates)
        for rank, seqs in ledger.received.items():
            mine = merged.received.setdefault(rank, set())
            merged.duplicates.extend((rank, s) for s in sorted(mine & seqs))
            mine |= seqs
    return merged


@dataclass
class Receiver:
    """Iterates the data messages of a stream, keeping the ledger and the counts."""

    url: str
    idle_timeout: float = 120.0
    tls: Security = None
    progress: Progress | None = None
    ledger: StreamLedger = field(default_factory=StreamLedger)
    messages: int = 0
    events: int = 0
    bytes: int = 0
    malformed: int = 0
    ended: bool = False
    timed_out: bool = False
    interruptible: bool = False
    connections: int = 1
    first_message_at: float | None = None  # time.time() when the first data message arrived
    last_message_at: float | None = None

    def __iter__(self) -> Iterator[tuple[Envelope, memoryview]]:
        try:
            for message in messages(self.url, idle_timeout=self.idle_timeout, tls=self.tls,
                                   interruptible=self.interruptible, connections=self.connections):
                try:
                    env, payload = unpack(message)
                except EnvelopeError as exc:
                    self.malformed += 1
                    log.warning("skipped a malformed message of %d bytes: %s", len(message), exc)
                    continue
                self.ledger.record(env)
                if env.kind is MessageKind.END:
                    continue
                self.last_message_at = time.time()
                if self.first_message_at is None:
                    self.first_message_at = self.last_message_at
                self.messages += 1
                self.events += env.count
                self.bytes += len(message)
                if self.progress is not None:
                    self.progress.update(1, env.count, len(message))
                yield env, payload
            self.ended = True
        except StreamTimeout as exc:
            self.timed_out = True
            log.info("%s", exc)
        finally:
            if self.progress is not None:
                self.progress.close()

    def complete(self) -> bool:
        return self.ended and self.ledger.complete()

    def summary(self) -> dict[str, Any]:
        return {"url": self.url, "messages": self.messages, "events": self.events, "bytes": self.bytes,
                "malformed": self.malformed, "end_of_stream": self.ended, "timed_out": self.timed_out,
                "complete": self.complete(), "gaps": self.ledger.describe_gaps(),
                "end_markers": len(self.ledger.expected), "first_message_at": self.first_message_at,
                "last_message_at": self.last_message_at}


def pull(url: str, out_dir: Path | None = None, *, idle_timeout: float = 120.0, tls: Security = None,
         show_progress: bool | None = None, interruptible: bool = False, connections: int = 1) -> Receiver:
    """Receive a whole stream; write each data message to ``out_dir`` (when given) and its ledger."""
    receiver = Receiver(url, idle_timeout, tls, Progress(f"pull {url}", enabled=show_progress),
                        interruptible=interruptible, connections=connections)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for env, payload in receiver:
        if out_dir is not None:
            write_atomic(out_dir / message_filename(env), payload)
    if out_dir is not None:
        write_atomic(out_dir / LEDGER_FILE, json.dumps(ledger_to_json(receiver.ledger)).encode())
    return receiver
