"""Run the chain on this rank: event source -> processing steps -> serializer -> every data handler.

Every rank runs ``run_streamer`` identically. Setup errors (bad input files, missing psana) happen before any
collective call and are raised on every rank alike; an error while streaming with several ranks aborts the
MPI job, so no rank waits forever at a barrier.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from streamer.base import (
    DataHandler,
    DeliveryError,
    EventSource,
    Message,
    MessageInfo,
    RunContext,
    Serializer,
    StreamStart,
    message_nbytes,
)
from streamer.config import StreamerConfig
from streamer.mpi import abort, is_open_ended, rank_and_size, split_events, stride_events, world_communicator
from streamer.pipelines.items import EventItem, as_batch
from streamer.progress import Progress
from streamer.registry import lookup
from streamer.sources.errors import SourceError
from streamer.summary import HandlerFigures, RankSummary, RunSummary

log = logging.getLogger(__name__)

AUTO = "auto"
T = TypeVar("T")


class Chain:
    """The components of one rank, built from a config."""

    def __init__(self, config: StreamerConfig, context: RunContext) -> None:
        self.config = config
        self.context = context
        source_impl = lookup("event_sources", config.event_source.type).implementation  # type: ignore[attr-defined]
        self.source: EventSource = source_impl(config.event_source, config.data_sources, context)
        self.steps = [lookup("processing_steps", s.type).implementation(s, context)  # type: ignore[attr-defined]
                      for s in config.processing_pipeline]
        ser = config.data_serializer
        self.serializer: Serializer = lookup("serializers", ser.type).implementation(ser, context)  # type: ignore
        self.handlers: list[DataHandler] = [
            lookup("data_handlers", h.type).implementation(h, context)  # type: ignore[attr-defined]
            for h in config.data_handlers]
        self.skipped = 0

    def open_handlers(self) -> None:
        for handler in self.handlers:
            handler.open()
        log.info("rank %d: %d handler(s) open", self.context.rank, len(self.handlers))

    def complete_events(self, indices: range) -> Iterator[EventItem]:
        """The source's events with their indices; events missing a datum (None, as psana gives) are skipped."""
        for index, event in zip(indices, self.source.events(indices), strict=False):
            missing = [name for name, value in event.items() if value is None]
            if missing:
                self.skipped += 1
                log.debug("event %d skipped: no value for %s", index, ", ".join(missing))
                continue
            yield EventItem(event, index)

    def items(self, indices: range) -> Iterator[Any]:
        items: Iterator[Any] = self.complete_events(indices)
        for step in self.steps:
            items = step.process(items)
        return items


class RankStream:
    """Hands messages to every handler with this rank's accounting (``seq`` counts every message sent)."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.context = chain.context
        self.seq = 0
        self.messages = 0
        self.bytes = 0

    def send(self, messages: list[Message], event_count: int) -> int:
        """Hand messages to every handler. Events are counted once: one per message for per-event
        serializers, else the whole batch on its first message."""
        sent = 0
        serializer = self.chain.serializer
        fmt = serializer.payload_format
        per_event = getattr(serializer, "one_message_per_event", False) and event_count > 0
        for number, message in enumerate(messages):
            count = 1 if per_event else (event_count if number == 0 else 0)
            info = MessageInfo(self.context.rank, self.context.nranks, self.seq, count, fmt=fmt)
            for handler in self.chain.handlers:
                handler.handle(message, info)
            self.seq += 1
            self.messages += 1
            sent += message_nbytes(message)
        self.bytes += sent
        return sent

    def flush(self) -> None:
        for handler in self.chain.handlers:
            handler.flush()


def reuse_freed_memory(limit_bytes: int = 1 << 30) -> bool:
    """Ask glibc to keep large freed blocks (batches, file images) for reuse instead of unmapping them.

    Each batch otherwise lands in freshly mapped memory and pays a page fault per 4 KiB on first touch,
    which costs more than the copy itself. Returns False where glibc's mallopt is not available.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        mmap_ok = any(libc.mallopt(m_mmap_threshold, size) for size in (256 << 20, 32 << 20))
        return bool(mmap_ok and libc.mallopt(m_trim_threshold, limit_bytes))
    except (OSError, AttributeError):
        return False


class SetupError(RuntimeError):
    """Another rank could not set up its part of the run; the message names that rank and its reason."""


def error_text(exc: BaseException) -> str:
    """One line for a user: OSErrors as 'reason: file', other errors as their message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__


def setup_together(context: RunContext, step: Callable[[], T]) -> T:
    """Run a setup step on every rank; if it fails on any rank, it fails on all (nobody waits at a barrier)."""
    result: T | None = None
    error: Exception | None = None
    try:
        result = step()
    except Exception as exc:  # re-raised below, after the other ranks heard about it
        error = exc
    if context.comm is not None and context.nranks > 1:
        reasons = context.comm.allgather(None if error is None else error_text(error))
        failed = [(rank, reason) for rank, reason in enumerate(reasons) if reason is not None]
        if error is None and failed:
            rank, reason = failed[0]
            raise SetupError(f"rank {rank} could not start: {reason}")
    if error is not None:
        raise error
    return result  # type: ignore[return-value]


def run_streamer(config: StreamerConfig, *, num_events: int | None = None, comm: Any = AUTO,
                 progress: bool | None = None) -> RunSummary | None:
    """Run this rank's share of the stream. Returns the run summary on rank 0, None on other ranks."""
    comm = world_communicator() if comm == AUTO else comm
    reuse_freed_memory()
    rank, nranks = rank_and_size(comm)
    start_time = time.time()
    if comm is not None and nranks > 1:
        start_time = comm.bcast(start_time, root=0)
    context = RunContext(config.source_identifier, rank, nranks, comm, options={"start_time": start_time})
    chain = setup_together(context, lambda: Chain(config, context))
    try:
        total = agree_on_total(context, setup_together(context, chain.source.number_of_events))
        announced = announced_total(total, num_events)
        indices = this_ranks_events(total, announced, rank, nranks)
        source_type = config.event_source.type  # type: ignore[attr-defined]
        if total is None:
            log.info("rank %d/%d: %s, events %d, %d, ... until the run ends (total not known yet)", rank,
                     nranks, source_type, indices.start, indices.start + indices.step)
        else:
            log.info("rank %d/%d: %s, events %d..%d of %d", rank, nranks, source_type, indices.start,
                     indices.stop - 1, announced)
        setup_together(context, chain.open_handlers)
        try:
            figures = stream_rank(chain, indices, progress, total=announced)
        except BaseException as exc:
            if comm is not None and nranks > 1:
                # a reason for the user: a receiver gone, a live run gone idle
                if isinstance(exc, DeliveryError | SourceError):
                    log.error("rank %d: %s; aborting the MPI job", rank, error_text(exc))
                else:
                    log.exception("rank %d failed while streaming; aborting the MPI job", rank)
                abort(comm)
            raise
    finally:
        chain.source.close()
    gathered = comm.gather(figures, root=0) if comm is not None and nranks > 1 else [figures]
    if rank != 0:
        return None
    return RunSummary.combine(config.source_identifier, gathered)


def agree_on_total(context: RunContext, total: int | None) -> int | None:
    """Every rank uses the same split: if any rank found the total unknown (a live run that closed
    between two ranks' looks), all split by index, which is right for a closed run too."""
    if context.comm is not None and context.nranks > 1:
        totals = context.comm.allgather(total)
        return None if any(t is None for t in totals) else totals[0]
    return total


def this_ranks_events(total: int | None, announced: int | None, rank: int, nranks: int) -> range:
    """Contiguous blocks of a known total (``announced``: the events to stream); by event index (``rank,
    rank + nranks, ...``, up to ``announced`` if given) when the total is not known."""
    if total is None:
        return stride_events(rank, nranks, announced)
    assert announced is not None
    return split_events(announced, rank, nranks)


def announced_total(total: int | None, num_events: int | None) -> int | None:
    """The events the stream header announces: None while the run's total is not known (``--num-events``
    on a live run announces that number, which the run usually reaches)."""
    if total is None:
        return num_events
    return total if num_events is None else min(total, num_events)


def header_start(chain: Chain, first: Any, total: int | None) -> StreamStart:
    """Collective: the header facts of the lowest rank whose first item exists (``first`` is this rank's)."""
    facts = chain.serializer.header_facts(as_batch(first)) if first is not None else None
    context = chain.context
    if context.comm is not None and context.nranks > 1:
        gathered = context.comm.gather(facts, root=0)
        facts = next((f for f in gathered or [] if f is not None), None)
    return StreamStart(events=total, facts=facts or {})


def stream_rank(chain: Chain, indices: range, show_progress: bool | None, total: int | None = None) -> RankSummary:
    """This rank's stream on opened handlers: header (rank 0), batches, flush, barrier, footer, close.

    Every rank computes its first item before the header, so the header can describe the data (e.g. the
    image size of a SIMPLON series) even when rank 0 itself has no events.
    """
    context = chain.context
    stream = RankStream(chain)
    items = chain.items(indices)
    peeked = time.monotonic()
    first_item = next(items, None)
    peek_s = time.monotonic() - peeked  # counted in the rates; waiting for the header and barrier is not
    if total is None and not is_open_ended(indices):
        total = len(indices)
    start = header_start(chain, first_item, total)
    if context.rank == 0:
        stream.send(chain.serializer.stream_header(start), 0)
    context.barrier()
    if first_item is not None:
        items = itertools.chain([first_item], items)
    started = time.monotonic() - peek_s
    label = f"rank {context.rank}/{context.nranks}: " if context.nranks > 1 else ""
    bar = Progress(0 if is_open_ended(indices) else len(indices), label=label,
                   enabled=False if context.rank != 0 else show_progress, stream=sys.stderr)
    events = batches = 0
    first: int | None = None
    last: int | None = None
    for item in items:
        batch = as_batch(item)
        count = batch.event_count
        nbytes = stream.send(chain.serializer.serialize(batch, batches), count)
        batches += 1
        events += count
        known = batch.indices[batch.indices >= 0]
        if len(known):
            first = int(known.min()) if first is None else min(first, int(known.min()))
            last = int(known.max()) if last is None else max(last, int(known.max()))
        bar.update(count, nbytes)
    stream.flush()
    context.barrier()
    if context.rank == 0:
        stream.send(chain.serializer.stream_footer(), 0)
    stream.flush()
    for handler in chain.handlers:
        handler.close()
    elapsed = time.monotonic() - started
    bar.finish()
    log.info("rank %d: done, %d events in %d batches, %d messages", context.rank, events, batches, stream.messages)
    return RankSummary(rank=context.rank, events=events, batches=batches, messages=stream.messages,
                       bytes=stream.bytes, elapsed_s=elapsed, skipped_events=chain.skipped, first_event=first, last_event=last,
                       handlers=[_handler_figures(h) for h in chain.handlers])


def _handler_figures(handler: DataHandler) -> HandlerFigures:
    summary = dict(handler.summary())
    return HandlerFigures(type=str(summary.pop("type", type(handler).__name__)),
                          messages=int(summary.pop("messages", handler.messages_sent)),
                          bytes=int(summary.pop("bytes", handler.bytes_sent)), details=summary)
