"""Confinement of user-given paths to a job folder, and the default jobs prefix."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from certified.api_errors import quoted


class PathEscape(ValueError):
    """A path in a request points outside the job folder."""


def inside(relative: str, *, field: str = "path") -> PurePosixPath:
    """``relative`` as a path that stays inside a job folder: not empty, not absolute, no ``..``."""
    if not relative or "\x00" in relative:
        raise PathEscape(f"{field}: empty or NUL-containing path is not allowed")
    pure = PurePosixPath(relative)
    if pure.is_absolute():
        raise PathEscape(f"{field}: absolute path {quoted(relative)} is not allowed; give a path inside the job folder")
    if ".." in pure.parts:
        raise PathEscape(f"{field}: '..' in {quoted(relative)} is not allowed; paths stay inside the job folder")
    return pure


def confine(base: Path, relative: str, *, field: str = "path") -> Path:
    """Resolve ``relative`` under ``base``; refuse absolute paths, ``..`` and symlinks that escape."""
    pure = inside(relative, field=field)
    root = base.resolve()
    target = (root / pure).resolve()
    if target != root and root not in target.parents:
        raise PathEscape(f"{field}: {quoted(relative)} resolves outside the job folder (through a symlink)")
    return target


def default_prefix() -> Path:
    """Jobs live under the user's data directory: $XDG_DATA_HOME/psik/jobs or ~/.local/share/psik/jobs."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "psik" / "jobs"
