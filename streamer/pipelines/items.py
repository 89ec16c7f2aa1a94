"""What flows between processing steps: events and batches that remember their global event indices.

Both are plain dicts of named data (so serializers and third-party steps can treat them as dicts), with the
global event indices kept as an attribute rather than as a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class EventItem(dict):
    """One event: ``dict[name, value]`` plus its global event ``index`` (-1 when unknown)."""

    def __init__(self, data: Mapping[str, Any], index: int = -1) -> None:
        super().__init__(data)
        self.index = index


class BatchItem(dict):
    """A batch: ``dict[name, ndarray]`` with the batch as first axis, plus the global ``indices`` it holds."""

    def __init__(self, data: Mapping[str, np.ndarray], indices: np.ndarray) -> None:
        super().__init__(data)
        self.indices = np.asarray(indices, dtype=np.int64)

    @property
    def event_count(self) -> int:
        return len(self.indices)


def batch_value(value: Any) -> np.ndarray:
    """A single event's value with a leading batch axis of 1 (strings become bytes so HDF5 can store them)."""
    return np.asarray(_bytes_if_str(value))[np.newaxis, ...]


def slice_batch(batch: BatchItem, start: int, stop: int) -> BatchItem:
    return BatchItem({name: value[start:stop] for name, value in batch.items()}, batch.indices[start:stop])


def as_batch(item: Mapping[str, Any]) -> BatchItem:
    """Return ``item`` as a batch: batches pass through, events (or plain dicts) become a batch of 1."""
    if isinstance(item, BatchItem):
        return item
    index = item.index if isinstance(item, EventItem) else -1
    return BatchItem({name: batch_value(value) for name, value in item.items()}, np.array([index]))


def with_data(item: Mapping[str, Any], data: Mapping[str, Any]) -> dict:
    """New data in the same kind of item, keeping the event index / indices of ``item``."""
    if isinstance(item, BatchItem):
        return BatchItem(data, item.indices)
    if isinstance(item, EventItem):
        return EventItem(data, item.index)
    return dict(data)


def stack_items(items: list[Mapping[str, Any]]) -> BatchItem:
    """Stack events and/or batches into one batch (every item must carry the same names)."""
    if len(items) == 1:
        return as_batch(items[0])
    names = list(items[0])
    for item in items[1:]:
        if list(item) != names:
            raise ValueError(f"cannot batch items with different data names: {names} vs {list(item)}")
    if all(not isinstance(item, BatchItem) for item in items):
        data = {name: np.stack([np.asarray(_bytes_if_str(item[name])) for item in items]) for name in names}
        indices = np.array([item.index if isinstance(item, EventItem) else -1 for item in items])
        return BatchItem(data, indices)
    batches = [as_batch(item) for item in items]
    data = {name: np.concatenate([b[name] for b in batches]) for name in names}
    return BatchItem(data, np.concatenate([b.indices for b in batches]))


def _bytes_if_str(value: Any) -> Any:
    return value.encode() if isinstance(value, str) else value


def leading_count(item: Mapping[str, Any]) -> int:
    """Events an item holds: a batch's length, 1 for an event."""
    if isinstance(item, BatchItem):
        return item.event_count
    return 1
