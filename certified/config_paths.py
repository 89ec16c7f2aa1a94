"""Paths in service configuration files, resolved once, when the file is loaded.

A path written in a service's YAML file (``state_dir: ./state``, ``cert: keys/dtn.crt``) means the same
wherever the service is started from: it is taken relative to the folder of that file (what users of
compose files and systemd units expect), with ``~`` expanded, and is absolute from then on, so jobs
running in their own folders see the same files. Fields typed ``ConfigPath`` (or ``ConfigCommand``
for a program: a bare name stays a ``$PATH`` lookup) do this while pydantic validates, reading the
folder from the validation context that ``file_context(path)`` makes; a config built in Python without
one resolves against the current directory. ``describe_paths(config)`` is the start-up log line::

    settings = ServiceConfig.model_validate(data, context=file_context(path))
    log.info("lclstream-api: paths %s", describe_paths(settings))   # state_dir=/srv/lcls/state ...
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ValidationInfo

CONFIG_DIR = "config_dir"


def absolute(path: str | Path, base: str | Path | None = None) -> Path:
    """``path`` with ``~`` expanded, made absolute against ``base`` (default: the current directory)."""
    expanded = Path(path).expanduser()
    if not expanded.is_absolute():
        expanded = Path(base if base is not None else os.getcwd()).expanduser() / expanded
    return Path(os.path.normpath(expanded))


def file_context(config_file: str | Path) -> dict[str, Any]:
    """The pydantic validation context for a config read from ``config_file``."""
    return {CONFIG_DIR: absolute(config_file).parent}


def _base(info: ValidationInfo) -> Path | None:
    context = info.context if isinstance(info.context, Mapping) else {}
    base = context.get(CONFIG_DIR)
    return Path(base) if base is not None else None


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    return absolute(value, _base(info))


def _resolve_command(value: str, info: ValidationInfo) -> str:
    if "/" not in value and not value.startswith("~"):
        return value  # a program name: looked up on $PATH when the job runs
    return str(absolute(value, _base(info)))


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
ConfigCommand = Annotated[str, AfterValidator(_resolve_command)]


def config_paths(model: BaseModel, prefix: str = "") -> list[tuple[str, Path]]:
    """Every ``Path`` value in ``model`` (nested models, dicts and lists too) with its dotted field name."""
    found: list[tuple[str, Path]] = []

    def visit(name: str, value: Any) -> None:
        if isinstance(value, Path):
            found.append((name, value))
        elif isinstance(value, BaseModel):
            for field in type(value).model_fields:
                visit(f"{name}.{field}" if name else field, getattr(value, field))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                visit(f"{name}.{key}", item)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                visit(f"{name}.{i}", item)

    visit(prefix, model)
    return found


def describe_paths(model: BaseModel) -> str:
    """One line for the start-up log: ``state_dir=/srv/state data_tls.cert=/srv/keys/dtn.crt``."""
    return " ".join(f"{name}={path}" for name, path in config_paths(model)) or "(none)"
