"""Data sources whose value depends only on the event's global index (and the run), usable with any source.

Every value is deterministic per (seed, global event index, data source name), so the same event gets the
same data whichever MPI rank produces it.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal

import numpy as np
from pydantic import Field

from streamer.base import ComponentConfig, DataSource, RunContext
from streamer.registry import Component, register

INDEX_DERIVED_TYPES = frozenset({"EventTimestamp", "SourceIdentifier", "SyntheticScalar"})
"""Data source types every built-in event source accepts: they need nothing but the event index."""


def event_rng(seed: int, index: int, name: str) -> np.random.Generator:
    """A random generator for one datum of one event: the same on every rank and every run."""
    return np.random.default_rng([seed, index, zlib.crc32(name.encode())])


class IndexedDataSource(DataSource):
    """A data source that computes its value from the global event index."""

    def __init__(self, name: str, config: ComponentConfig, context: RunContext, seed: int = 0) -> None:
        super().__init__(name, config, context)
        self.seed = seed

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Do expensive one-off work (e.g. precomputed pools) before the stream starts."""

    def extract(self, index: int) -> Any:
        raise NotImplementedError


class EventTimestampConfig(ComponentConfig):
    """The event's time: the run's start time plus index / repetition rate, in seconds since the epoch."""

    type: Literal["EventTimestamp"]
    repetition_rate_hz: float = Field(120.0, gt=0, description="pulses per second of the machine")


class EventTimestamp(IndexedDataSource):
    config: EventTimestampConfig

    def extract(self, index: int) -> np.float64:
        start = float(self.context.options.get("start_time", 0.0))
        return np.float64(start + index / self.config.repetition_rate_hz)


class SourceIdentifierConfig(ComponentConfig):
    """The run's source identifier (the top-level ``source_identifier``), as bytes."""

    type: Literal["SourceIdentifier"]


class SourceIdentifier(IndexedDataSource):
    def extract(self, index: int) -> bytes:
        return self.context.source_identifier.encode()


register("data_sources", Component(EventTimestampConfig, EventTimestamp))
register("data_sources", Component(SourceIdentifierConfig, SourceIdentifier))


def build_indexed_sources(data_sources: dict[str, ComponentConfig], context: RunContext,
                          seed: int = 0) -> dict[str, IndexedDataSource]:
    """Instantiate every configured data source whose implementation is an IndexedDataSource."""
    from streamer.registry import lookup

    built: dict[str, IndexedDataSource] = {}
    for name, cfg in data_sources.items():
        impl = lookup("data_sources", cfg.type).implementation  # type: ignore[attr-defined]
        if isinstance(impl, type) and issubclass(impl, IndexedDataSource):
            built[name] = impl(name, cfg, context, seed)
    return built
