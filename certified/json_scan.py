"""Find, by field path, what Python's ``json`` reads but no service should take in.

* **NaN and Infinity.** ``json`` accepts the non-standard literals ``NaN``, ``Infinity`` and
  ``-Infinity`` and turns ``1e999`` into ``inf``; pydantic then lets them into float fields, where
  they defeat every bound (``nan > limit`` is False).
* **Unpaired surrogates.** ``"\\ud800"`` decodes to a string that is not Unicode text; it cannot be
  written to a file or a log as UTF-8, and as a dict key it makes pydantic raise instead of
  reporting a validation error.

``json_problems(body)`` parses once, with hooks that mark non-finite numbers, and walks the result
without recursion (a deeply nested body cannot exhaust the stack here)::

    json_problems(b'{"options": {"idle_timeout": NaN}, "xs": [1, 1e999]}')
    # [(("options", "idle_timeout"), NONFINITE), (("xs", 1), NONFINITE)]
"""

from __future__ import annotations

import json
import math
from typing import Any

Path = tuple[str | int, ...]
NONFINITE = "NaN and Infinity are not allowed here; give a finite number"
SURROGATE = "text with an unpaired UTF-16 surrogate (such as \\ud800) is not allowed"


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


def _not_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _safe(key: str) -> str:
    return key.encode("utf-8", "replace").decode("utf-8")


def json_problems(body: bytes | str, limit: int = 20) -> list[tuple[Path, str]]:
    """The first ``limit`` (path, why) pairs of non-finite numbers and non-text strings in ``body``."""
    found: list[tuple[Path, str]] = []
    stack: list[tuple[Path, Any]] = [((), load_marked(body))]
    while stack and len(found) < limit:
        path, value = stack.pop()
        if isinstance(value, NonFinite):
            found.append((path, NONFINITE))
        elif isinstance(value, str):
            if _not_text(value):
                found.append((path, SURROGATE))
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if _not_text(key):
                    found.append(((*path, _safe(key)), SURROGATE))
                else:
                    stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))
    return found[:limit]
