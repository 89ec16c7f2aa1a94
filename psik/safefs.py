"""Files inside folders that belong to a job's account, opened without trusting what that account did.

A job folder belongs to the job's OS account, so the job may replace any file in it by a symbolic
link, a hard link to someone else's file, or a FIFO. A service (often root) must still read and
append the files it keeps there (status.csv, logs, callbacks.csv). Every such access goes through
``open_file``: the path is walked one component at a time from a descriptor of the folder with
O_NOFOLLOW (no link is ever followed, so nothing outside the folder can be reached), the open never
blocks (O_NONBLOCK), and only a regular file with a single link, owned by the folder's owner, is
used; anything else raises ``UnsafeFile``. Files the service creates there are given to the folder's
owner. Nothing is truncated before these checks.

    with open_file(job_folder, "log/stdout.1", "r") as fh: ...
    append_text(job_folder, "status.csv", line)
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import IO, Literal

from psik.paths import PathEscape, inside

Mode = Literal["r", "a", "a+", "w"]
_FLAGS = {"r": os.O_RDONLY, "a": os.O_WRONLY | os.O_APPEND, "a+": os.O_RDWR | os.O_APPEND, "w": os.O_WRONLY}
_BASE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafeFile(PathEscape):
    """A file in a job folder that psik will not use (a link, not a regular file, or someone else's)."""


def _open_dir(path: str | Path, dir_fd: int | None = None) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def open_file(folder: Path, relative: str, mode: Mode = "r", *, create: bool = False,
              field: str = "path") -> IO[str]:
    """Open ``folder/relative`` as text, under the rules above (``create`` makes a missing file)."""
    parts = list(inside(relative, field=field).parts)
    root = _open_dir(folder)
    fd = -1
    try:
        owner = os.fstat(root)
        parent = root
        for i, part in enumerate(parts[:-1]):
            try:
                nxt = _open_dir(part, dir_fd=parent)
            except OSError as exc:
                raise _explain(exc, "/".join(parts[:i + 1]), field) from None
            if parent != root:
                os.close(parent)
            parent = nxt
        try:
            fd, created = _open_leaf(parts[-1], parent, _FLAGS[mode], create)
        except OSError as exc:
            raise _explain(exc, relative, field) from None
        finally:
            if parent != root:
                os.close(parent)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{field}: {relative!r} is not a regular file")
        if st.st_nlink != 1:
            raise UnsafeFile(f"{field}: {relative!r} has {st.st_nlink} hard links; psik uses only single-link files")
        if st.st_uid != owner.st_uid:
            if not created:
                raise UnsafeFile(f"{field}: {relative!r} does not belong to the job folder's owner")
            os.fchown(fd, owner.st_uid, owner.st_gid)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        if mode == "w":
            os.ftruncate(fd, 0)
        fh = open(fd, mode, newline="", encoding="utf-8",
                  errors="replace")
        fd = -1
        return fh
    finally:
        if fd >= 0:
            os.close(fd)
        os.close(root)


def _open_leaf(name: str, parent: int, flags: int, create: bool) -> tuple[int, bool]:
    if create and flags != os.O_RDONLY:
        try:
            return os.open(name, flags | _BASE | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=parent), True
        except FileExistsError:
            pass
    return os.open(name, flags | _BASE, dir_fd=parent), False


def _explain(exc: OSError, relative: str, field: str) -> OSError:
    import errno

    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return UnsafeFile(f"{field}: {relative!r} goes through a symbolic link or a non-folder; "
                          "psik does not follow links in job folders")
    if exc.errno == errno.ENXIO:
        return UnsafeFile(f"{field}: {relative!r} is not a regular file")
    return exc


def read_text(folder: Path, relative: str, limit: int | None = None, *, field: str = "path") -> str:
    """The text of ``folder/relative`` (at most ``limit`` characters from its start)."""
    with open_file(folder, relative, "r", field=field) as fh:
        return fh.read() if limit is None else fh.read(limit)


def read_tail(folder: Path, relative: str, max_bytes: int) -> str:
    """The last ``max_bytes`` bytes (or fewer) of ``folder/relative`` as text ("" when it is missing)."""
    try:
        fh = open_file(folder, relative, "r")
    except FileNotFoundError:
        return ""
    with fh:
        raw = fh.buffer
        size = os.fstat(raw.fileno()).st_size
        raw.seek(max(0, size - max_bytes))
        return raw.read().decode(errors="replace")


def write_text(folder: Path, relative: str, text: str) -> None:
    """Replace the contents of ``folder/relative`` (created, and given to the folder's owner, if missing)."""
    with open_file(folder, relative, "w", create=True) as fh:
        fh.write(text)
