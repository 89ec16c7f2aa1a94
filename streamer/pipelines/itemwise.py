"""Base of steps that transform each event or batch on its own, whatever its leading batch axes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from streamer.base import ProcessingStep
from streamer.pipelines.items import with_data


class ItemwiseStep(ProcessingStep):
    """Calls ``transform(data)`` on every item's data and keeps each item's event indices."""

    def process(self, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            yield with_data(item, self.transform(dict(item)))

    def transform(self, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def field(self, data: Mapping[str, Any], name: str) -> np.ndarray:
        """The named array, or a KeyError naming the step, the field and the fields that exist."""
        if name not in data:
            raise KeyError(f"{type(self).__name__}: no field {name!r} in the event (fields: {', '.join(data)})")
        return np.asarray(data[name])
