"""Where status goes: a JSON line on stdout, an atomically replaced status file, signed callbacks."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import TextIO

from buffer.callbacks import CallbackPoster
from buffer.status import BufferStatus

log = logging.getLogger(__name__)


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a mix."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".status-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class Reporter:
    """Publishes snapshots: ``periodic`` every report interval, ``state_change`` on each transition."""

    def __init__(self, *, status_file: str | None, callback: CallbackPoster | None,
                 stream: TextIO | None = None) -> None:
        self.status_file = status_file
        self.callback = callback
        self.stream = stream if stream is not None else sys.stdout

    def periodic(self, status: BufferStatus) -> None:
        line = status.model_dump_json()
        self._print(line)
        self._write_file(line)

    def state_change(self, status: BufferStatus) -> None:
        line = status.model_dump_json()
        self._print(line)
        self._write_file(line)
        if self.callback is not None:
            self.callback.post(line.encode())

    def _print(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # stdout closed or a broken pipe must not stop the stream
            pass

    def _write_file(self, line: str) -> None:
        if self.status_file is None:
            return
        try:
            write_atomically(self.status_file, line + "\n")
        except OSError as exc:
            log.warning("cannot write status file %s: %s", self.status_file, exc)

    def close(self, timeout: float = 15.0) -> None:
        if self.callback is not None:
            self.callback.close(timeout)
