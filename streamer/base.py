"""Interfaces every streamer component implements, and the context they run in.

The engine is a chain, run identically on every MPI rank::

    EventSource --events--> processing steps --batches--> Serializer --messages--> every DataHandler

An *event* is a ``dict[str, numpy.ndarray | scalar]`` keyed by data source name. A *batch* is a
``dict[str, numpy.ndarray]`` whose arrays have the batch as their first axis. A *message* is ``bytes``
or, for multi-part transports such as SIMPLON over ZeroMQ, a ``list[bytes]`` of frames.

Each component type is a pair: a pydantic config model (subclass of ``ComponentConfig`` with a
``type: Literal["Name"]`` field) and an implementation class, registered with
``streamer.registry.register`` or through the entry point groups listed there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from streamer.envelope import PayloadFormat

Event = dict[str, Any]
Batch = dict[str, np.ndarray]
Message = bytes | list[bytes]


class ComponentConfig(BaseModel):
    """Base of every section model: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class RunContext:
    """What a component knows about the run it is part of."""

    source_identifier: str
    rank: int = 0
    nranks: int = 1
    comm: Any = None  # mpi4py communicator, or None when running without MPI
    options: dict[str, Any] = field(default_factory=dict)

    def barrier(self) -> None:
        if self.comm is not None and self.nranks > 1:
            self.comm.Barrier()


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """Accounting for one message: which rank sent it, its per-rank sequence number, its events."""

    rank: int
    nranks: int
    seq: int
    event_count: int
    fmt: PayloadFormat = PayloadFormat.RAW


@dataclass(frozen=True)
class StreamStart:
    """What rank 0 knows when it writes the stream header.

    ``events``: events the run will stream (before any the source skips), None when unknown;
    ``facts``: ``Serializer.header_facts`` of the first batch of the lowest rank that has one ({} if none).
    """

    events: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)


class DeliveryError(RuntimeError):
    """A handler could not deliver the stream: no receiver came, one went away, or one stopped taking messages."""


class DataSource(ABC):  # noqa: B024 - a base for per-datum helpers, no required method
    """Extracts one named datum from an event of a source (used by sources that need per-datum logic)."""

    def __init__(self, name: str, config: ComponentConfig, context: RunContext) -> None:
        self.name = name
        self.config = config
        self.context = context


class EventSource(ABC):
    """Yields events. ``events(indices)`` yields exactly the events with those global indices, in order."""

    def __init__(self, config: ComponentConfig, data_sources: dict[str, ComponentConfig],
                 context: RunContext) -> None:
        self.config = config
        self.data_sources = data_sources
        self.context = context

    @abstractmethod
    def number_of_events(self) -> int:
        """Total events available (before MPI splitting). Opening resources here is fine."""

    @abstractmethod
    def events(self, indices: range) -> Iterator[Event]:
        """Yield the events with the given global indices (each a dict keyed by data source name)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class ProcessingStep(ABC):
    """Transforms a stream of events or batches. Steps compose in the order the config lists them."""

    def __init__(self, config: ComponentConfig, context: RunContext) -> None:
        self.config = config
        self.context = context

    @abstractmethod
    def process(self, items: Iterator[Any]) -> Iterator[Any]:
        """Consume events or batches and yield events or batches."""


class Serializer(ABC):
    """Turns a batch into one or more messages. Decoders live beside each serializer."""

    payload_format: ClassVar[PayloadFormat] = PayloadFormat.RAW
    #: True when ``serialize`` returns one message per event (msgpack, SIMPLON): each message then carries
    #: ``event_count=1`` in its MessageInfo; False: the batch's single message carries the batch's count.
    one_message_per_event: ClassVar[bool] = False

    def __init__(self, config: ComponentConfig, context: RunContext) -> None:
        self.config = config
        self.context = context

    def header_facts(self, first: Batch) -> dict[str, Any]:
        """Small picklable facts the stream header needs from the data (e.g. image size), from this rank's
        first batch. Called on every rank that has data; rank 0 gets those of the lowest such rank."""
        return {}

    def stream_header(self, start: StreamStart | None = None) -> list[Message]:
        """Messages sent once per stream before any data, by rank 0 only (e.g. SIMPLON dheader)."""
        return []

    @abstractmethod
    def serialize(self, batch: Batch, sequence: int) -> list[Message]:
        """Messages for one batch; ``sequence`` is this rank's batch number, starting at 0."""

    def stream_footer(self) -> list[Message]:
        """Messages sent once per stream after every rank finished, by rank 0 only."""
        return []


class DataHandler(ABC):
    """Receives every message (the same bytes for every handler) and delivers it somewhere."""

    def __init__(self, config: ComponentConfig, context: RunContext) -> None:
        self.config = config
        self.context = context
        self.messages_sent = 0
        self.bytes_sent = 0

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect or bind. Called on every rank before the stream header is sent."""

    @abstractmethod
    def handle(self, message: Message, info: MessageInfo) -> None:
        """Deliver one message; must not drop it."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Block until everything handed to ``handle`` has left this process."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Send this rank's explicit end of stream (where the transport has one) and release resources."""

    def summary(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "messages": self.messages_sent, "bytes": self.bytes_sent}


def message_nbytes(message: Message) -> int:
    if isinstance(message, list):
        return sum(len(part) for part in message)
    return len(message)
