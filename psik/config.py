"""Loading the Psi-k config (YAML or JSON) and job specs, with every field error reported.

Paths in a config file are resolved once, here: relative to the file's folder, ``~`` expanded
(``certified.config_paths``); a ``--prefix`` given on a command line is relative to the current
directory, like any command-line path.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from certified.config_paths import absolute, file_context
from psik.models import JobSpec, PsikConfig
from psik.paths import default_prefix

CONFIG_ENV = "PSIK_CONFIG"
M = TypeVar("M", bound=BaseModel)


class InputError(ValueError):
    """Bad user input: ``lines`` holds one message per problem (``field.path: why``)."""

    def __init__(self, source: str, lines: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(lines))
        self.source = source
        self.lines = lines

    def report(self, prog: str) -> None:
        """Print one header line and one line per problem on stderr (for CLIs exiting 2)."""
        print(f"{prog}: invalid {self.source}:", file=sys.stderr)
        for line in self.lines:
            print(f"  {line}", file=sys.stderr)


def field_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not allowed)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        out.append(f"{loc}: {msg}")
    return out


def parse_text(text: str, source: str) -> Any:
    try:
        return json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(source, [f"not valid {'JSON' if source.endswith('.json') else 'YAML'}: {exc}"]) from exc


def validate(model: type[M], data: Any, source: str, context: dict[str, Any] | None = None) -> M:
    if not isinstance(data, dict):
        raise InputError(source, [f"expected a mapping of fields, got {type(data).__name__}"])
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise InputError(source, field_errors(exc)) from exc


def read_file(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise InputError(str(path), [f"cannot read: {exc.strerror}"]) from exc


def load_spec(path: Path) -> JobSpec:
    return validate(JobSpec, parse_text(read_file(path), str(path)), str(path))


def load_config(path: Path | None = None, prefix: Path | None = None) -> PsikConfig:
    """The config named by ``path`` or $PSIK_CONFIG; without either, a ``default`` local backend.

    Every path in it is absolute afterwards (see the module docstring).
    """
    name = path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if name is None:
        data: dict[str, Any] = {"prefix": str(absolute(prefix or default_prefix()))}
    else:
        data = parse_text(read_file(name), str(name)) or {}
        if not isinstance(data, dict):
            raise InputError(str(name), ["expected a mapping of fields"])
        if prefix is not None:
            data["prefix"] = str(absolute(prefix))
        data.setdefault("prefix", str(default_prefix()))
    return validate(PsikConfig, data, str(name or "defaults"), file_context(name) if name else None)
