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


def progress_line(status: BufferStatus) -> str:
    """One human-readable line: state, connections, counts and rates."""
    return (f"{status.state.value:9} producers {status.producers_connected}/{status.producers_total}  "
            f"consumers {status.consumers_connected}/{status.consumers_total}  "
            f"in {status.messages_received} msg {status.bytes_received / 1e9:.2f} GB "
            f"({status.receive_rate_bytes / 1e6:.1f} MB/s)  "
            f"out {status.messages_sent} msg ({status.send_rate_bytes / 1e6:.1f} MB/s)  "
            f"buffered {status.messages_buffered} msg {status.bytes_buffered / 1e6:.1f} MB")


class Reporter:
    """Publishes snapshots: ``periodic`` every report interval, ``state_change`` on each transition."""

    def __init__(self, *, status_file: str | None, callback: CallbackPoster | None,
                 stream: TextIO | None = None, terminal: TextIO | None = None) -> None:
        self.status_file = status_file
        self.callback = callback
        self.stream = stream if stream is not None else sys.stdout
        # a person watching: one human line on stderr, rewritten in place, when stderr is a terminal
        self.terminal = terminal if terminal is not None else (sys.stderr if sys.stderr.isatty() else None)

    def periodic(self, status: BufferStatus) -> None:
        line = status.model_dump_json()
        self._print(line)
        self._write_file(line)
        if self.terminal is not None:
            try:
                self.terminal.write(f"\r{progress_line(status)} ")
                self.terminal.flush()
            except (OSError, ValueError):
                self.terminal = None

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
        if self.terminal is not None:
            try:
                self.terminal.write("\n")  # leave the last progress line on the screen
                self.terminal.flush()
            except (OSError, ValueError):
                pass
        if self.callback is not None:
            self.callback.close(timeout)
