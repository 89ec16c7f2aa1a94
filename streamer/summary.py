"""What a run did: per-rank figures gathered to rank 0, and the one summary rank 0 prints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def human_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


class HandlerFigures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    messages: int
    bytes: int
    details: dict[str, Any] = {}


class RankSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int
    events: int
    batches: int
    messages: int
    bytes: int
    elapsed_s: float
    skipped_events: int = 0
    first_event: int | None
    last_event: int | None
    handlers: list[HandlerFigures]


class RunSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_identifier: str
    nranks: int
    events: int
    bytes: int
    elapsed_s: float
    ranks: list[RankSummary]
    handlers: list[HandlerFigures]

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def gb_per_s(self) -> float:
        return self.bytes / 1e9 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @classmethod
    def combine(cls, source_identifier: str, ranks: list[RankSummary]) -> RunSummary:
        handlers = []
        for i, first in enumerate(ranks[0].handlers):
            same = [r.handlers[i] for r in ranks]
            handlers.append(HandlerFigures(type=first.type, messages=sum(h.messages for h in same),
                                           bytes=sum(h.bytes for h in same)))
        return cls(source_identifier=source_identifier, nranks=len(ranks), events=sum(r.events for r in ranks),
                   bytes=sum(r.bytes for r in ranks), elapsed_s=max(r.elapsed_s for r in ranks),
                   ranks=ranks, handlers=handlers)

    def to_text(self) -> str:
        lines = [f"lclstreamer {self.source_identifier}: {self.events} events, {human_bytes(self.bytes)} "
                 f"in {self.elapsed_s:.2f} s on {self.nranks} rank{'s' if self.nranks > 1 else ''}: "
                 f"{self.events_per_s:.1f} events/s, {self.gb_per_s:.3f} GB/s"]
        for r in self.ranks:
            span = f"events {r.first_event}..{r.last_event}" if r.events else "no events"
            if r.skipped_events:
                span += f", {r.skipped_events} skipped for missing data"
            rate = r.events / r.elapsed_s if r.elapsed_s > 0 else 0.0
            lines.append(f"  rank {r.rank}: {r.events} events ({span}), {r.batches} batches, {r.messages} messages, "
                         f"{human_bytes(r.bytes)}, {r.elapsed_s:.2f} s, {rate:.1f} events/s")
        for i, h in enumerate(self.handlers):
            lines.append(f"  handler {i} {h.type}: {h.messages} messages, {human_bytes(h.bytes)}")
        return "\n".join(lines)
