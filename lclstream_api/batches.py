"""Python access to a transfer: ``stream(id_or_url)`` yields decoded batches; ``CachedDataset`` caches them.

    for batch in stream("3f2a9c0d51b7", server="lclstream"):     # a transfer id: credentials fetched
        batch.rank, batch.seq, batch.data["jungfrau"].shape
    stream("tls+tcp://dtn.example.org:20001", tls=DataTLS(cert=..., key=..., ca=...))   # or a url

``CachedDataset`` is an iterable dataset for many-epoch training (wrap it in
``torch.utils.data.IterableDataset`` if you use PyTorch): the first epoch requests a transfer and
keeps every received message on local disk, keyed by the hash of the streamer config; later epochs,
and other jobs asking for the same config, read that cache instead of asking the facility again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lclstream_api.client import TransferClient, load_request_config
from lclstream_api.models import TransferOptions, config_hash
from lclstream_api.progress import Progress
from lclstream_api.receive import (
    LEDGER_FILE,
    Receiver,
    filename,
    ledger_to_json,
    message_filename,
    parse_filename,
    write_atomic,
)
from lclstream_api.transport import Security, open_transfer
from streamer.config import load_config
from streamer.envelope import PayloadFormat
from streamer.serializers import decode_payload

log = logging.getLogger("lclstream_api.stream")
COMPLETE_MARKER = "COMPLETE"


@dataclass(frozen=True)
class Batch:
    """One decoded unit of a stream: ``data`` maps field names to arrays (batch as first axis)."""

    rank: int
    seq: int
    data: dict[str, Any]
    part: int = 0  # index inside the message, for formats with several records per message (msgpack)


class IncompleteStream(RuntimeError):
    """The stream ended (or stalled) without every producer rank's sequence complete."""

    def __init__(self, gaps: list[str]) -> None:
        self.gaps = gaps
        super().__init__("stream incomplete: " + ("; ".join(gaps) or "end of stream never received"))


def _decoded(rank: int, seq: int, payload: bytes | memoryview, fmt: PayloadFormat) -> Iterator[Batch]:
    for part, data in enumerate(decode_payload(payload, fmt)):
        yield Batch(rank=rank, seq=seq, data=data, part=part)


class BatchStream:
    """Iterable over the decoded batches of the buffer at ``url``; ``receiver`` keeps the ledger."""

    def __init__(self, url: str, *, idle_timeout: float = 120.0, tls: Security = None,
                 show_progress: bool | None = False, connections: int = 1) -> None:
        self.receiver = Receiver(url, idle_timeout, tls, Progress(f"stream {url}", enabled=show_progress),
                                 connections=connections)

    def __iter__(self) -> Iterator[Batch]:
        for env, payload in self.receiver:
            yield from _decoded(env.rank, env.seq, payload, env.fmt)

    def complete(self) -> bool:
        return self.receiver.complete()


def stream(target: str, *, server: str | None = None, client: TransferClient | None = None,
           config_dir: str | Path | None = None, idle_timeout: float = 120.0, tls: Security = None,
           show_progress: bool | None = False, connections: int = 1) -> BatchStream:
    """Decoded batches (with rank and sequence) of a transfer, until the end of the stream.

    ``target`` is a transfer id (its data credentials are fetched from LCLStream-API at ``server``, an
    alias or URL, default ``$LCLSTREAM_SERVER``, or through ``client``) or a stream URL (``tls`` then
    gives the files for a ``tls+tcp://`` one). ``connections`` > 1 receives over that many connections.
    """
    url = target
    if "://" not in target:
        api = client or _client(server, config_dir)
        try:
            creds, tls = open_transfer(target, api)
        finally:
            if client is None:
                api.close()
        url = creds.url
    return BatchStream(url, idle_timeout=idle_timeout, tls=tls, show_progress=show_progress,
                       connections=connections)


def _client(server: str | None, config_dir: str | Path | None) -> TransferClient:
    return TransferClient(server or os.environ.get("LCLSTREAM_SERVER", "lclstream"), config_dir)


def default_cache_root() -> Path:
    root = os.environ.get("LCLSTREAM_CACHE")
    if root:
        return Path(root) / "datasets"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lclstream" / "datasets"


class CachedDataset:
    """Batches of one streamer config, streamed once through LCLStream-API and then read from disk."""

    def __init__(self, config: str | Path | dict[str, Any], *, server: str | None = None,
                 client: TransferClient | None = None, options: TransferOptions | None = None,
                 cache_dir: Path | None = None, config_dir: str | Path | None = None,
                 idle_timeout: float = 120.0) -> None:
        self.config = load_request_config(config)
        self.key = config_hash(load_config(self.config))  # same hash the service reports
        self.options = options or TransferOptions()
        self.directory = (cache_dir or default_cache_root()) / self.key
        self._client = client
        self._server = server
        self._config_dir = config_dir
        self.idle_timeout = idle_timeout
        self.transfers: list[str] = []  # ids of the transfers this object requested

    @property
    def cached(self) -> bool:
        return (self.directory / COMPLETE_MARKER).is_file()

    def __iter__(self) -> Iterator[Batch]:
        if self.cached:
            log.info("reading cached dataset %s", self.directory)
            return self._from_cache()
        return self._fetch()

    def _from_cache(self) -> Iterator[Batch]:
        entries = sorted(p for p in (parse_filename(f.name) for f in self.directory.iterdir()) if p)
        for rank, seq, fmt in entries:
            name = filename(rank, seq, fmt)
            yield from _decoded(rank, seq, (self.directory / name).read_bytes(), fmt)

    def _client_or_new(self) -> TransferClient:
        if self._client is None:
            self._client = _client(self._server, self._config_dir)
        return self._client

    def _fetch(self) -> Iterator[Batch]:
        api = self._client_or_new()
        view = api.request(self.config, self.options)
        self.transfers.append(view.id)
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.key}-", dir=self.directory.parent))
        finished = False
        try:
            creds, tls = open_transfer(view.id, api)
            batches = BatchStream(creds.url, idle_timeout=self.idle_timeout, tls=tls)
            for env, payload in batches.receiver:
                write_atomic(staging / message_filename(env), payload)
                yield from _decoded(env.rank, env.seq, payload, env.fmt)
            if not batches.complete():
                raise IncompleteStream(batches.receiver.ledger.describe_gaps())
            write_atomic(staging / LEDGER_FILE, json.dumps(ledger_to_json(batches.receiver.ledger)).encode())
            (staging / COMPLETE_MARKER).write_text(view.id + "\n")
            if self.directory.exists():
                shutil.rmtree(self.directory)  # an incomplete leftover of an earlier attempt
            os.replace(staging, self.directory)
            finished = True
        finally:
            if not finished:
                shutil.rmtree(staging, ignore_errors=True)
                _cancel_quietly(api, view.id)


def _cancel_quietly(api: TransferClient, transfer_id: str) -> None:
    try:
        api.cancel(transfer_id)
    except Exception as exc:  # already finished, or the service is gone: nothing more to do
        log.debug("cancel of %s after an interrupted epoch: %s", transfer_id, exc)
