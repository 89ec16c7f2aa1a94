"""``BatchProcessingPipeline``: stack events into batches of ``batch_size`` (the last partial batch is flushed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from streamer.base import ComponentConfig, ProcessingStep
from streamer.pipelines.items import leading_count, slice_batch, stack_items
from streamer.registry import Component, register


class BatchProcessingPipelineConfig(ComponentConfig):
    """Stack each field of ``batch_size`` consecutive events along a new first axis."""

    type: Literal["BatchProcessingPipeline"]
    batch_size: int = Field(ge=1, le=1 << 16)

    def output_names(self, names: set[str]) -> set[str]:
        return names


class BatchProcessingPipeline(ProcessingStep):
    config: BatchProcessingPipelineConfig

    def process(self, items: Iterator[Any]) -> Iterator[Any]:
        size = self.config.batch_size
        pending: list[Any] = []
        count = 0
        for item in items:
            pending.append(item)
            count += leading_count(item)
            if count < size:
                continue
            batch = stack_items(pending)
            full = count - count % size
            for start in range(0, full, size):
                yield slice_batch(batch, start, start + size)
            pending = [slice_batch(batch, full, count)] if full < count else []
            count -= full
        if pending:
            yield stack_items(pending)


register("processing_steps", Component(BatchProcessingPipelineConfig, BatchProcessingPipeline))
