"""Find NaN and Infinity in a JSON document, by field path.

Python's ``json`` reads the non-standard literals ``NaN``, ``Infinity`` and ``-Infinity`` and turns a
number such as ``1e999`` into ``inf``; pydantic then lets them into every float field, where they
break comparisons (``nan > limit`` is False, so a NaN passes every bound). Services refuse them at the
door: ``nonfinite_paths(body)`` parses once with hooks that mark such numbers and walks the result
without recursion, returning where they are::

    nonfinite_paths(b'{"options": {"idle_timeout": NaN}, "xs": [1, 1e999]}')
    # [("options", "idle_timeout"), ("xs", 1)]
"""

from __future__ import annotations

import json
import math
from typing import Any

Path = tuple[str | int, ...]


class NonFinite:
    """Stands in for a NaN/Infinity number while the document is walked."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _float(text: str) -> float | NonFinite:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


def load_marked(body: bytes | str) -> Any:
    """The parsed document with every non-finite number replaced by a ``NonFinite`` marker.

    Raises ``ValueError`` (``json.JSONDecodeError`` among others) when ``body`` is not JSON.
    """
    return json.loads(body, parse_constant=NonFinite, parse_float=_float)


def nonfinite_paths(body: bytes | str, limit: int = 20) -> list[Path]:
    """Paths of the first ``limit`` NaN/Infinity numbers in ``body`` (empty when there are none)."""
    found: list[Path] = []
    stack: list[tuple[Path, Any]] = [((), load_marked(body))]
    while stack and len(found) < limit:
        path, value = stack.pop()
        if isinstance(value, NonFinite):
            found.append(path)
        elif isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))
    return found
