"""``SyntheticEventSource``: a deterministic run of ``number_of_events`` events generated from ``seed``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field

from streamer.base import ComponentConfig, Event, EventSource, RunContext
from streamer.registry import Component, register
from streamer.sources.indexed import INDEX_DERIVED_TYPES, build_indexed_sources


class SyntheticEventSourceConfig(ComponentConfig):
    """Events made up on the fly; event ``i`` is the same whichever rank produces it."""

    supported_data_sources: ClassVar[frozenset[str] | None] = INDEX_DERIVED_TYPES | {
        "SyntheticAreaDetector", "SyntheticWaveformDigitizer"}

    type: Literal["SyntheticEventSource"]
    number_of_events: int = Field(ge=0, description="events in the run (before MPI splitting)")
    seed: int = Field(0, ge=0, description="seed of every random draw; same seed, same data")


class SyntheticEventSource(EventSource):
    config: SyntheticEventSourceConfig

    def __init__(self, config: ComponentConfig, data_sources: dict[str, ComponentConfig],
                 context: RunContext) -> None:
        super().__init__(config, data_sources, context)
        self.sources = build_indexed_sources(data_sources, context, seed=self.config.seed)

    def number_of_events(self) -> int:
        for source in self.sources.values():
            source.prepare()  # before the stream starts, so it is not counted in the rates
        return self.config.number_of_events

    def events(self, indices: range) -> Iterator[Event]:
        for index in indices:
            yield {name: source.extract(index) for name, source in self.sources.items()}


register("event_sources", Component(SyntheticEventSourceConfig, SyntheticEventSource))
