"""MPI helpers: detect a launch by mpiexec, get the world communicator, split events across ranks.

Without mpiexec the streamer runs as a single rank and never initialises MPI. A source with a known total
is split in contiguous blocks (``split_events``: neighbouring events stay on one rank, which reads files
chunk by chunk); a source whose total is not known yet (a live run) is split by event index
(``stride_events``: rank ``r`` of ``N`` takes ``r, r+N, ...``), so every event has exactly one rank
whatever the run's final length.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import sys
import termios
import time
from typing import Any

OPEN_END = 1 << 62  # the stop of an open-ended share: more events than any run has
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMI_FD", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "HYDI_CONTROL_FD")


def launched_by_mpiexec(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return any(name in env for name in LAUNCHER_VARIABLES)


def world_communicator() -> Any:
    """MPI.COMM_WORLD when started by mpiexec, else None (single rank, MPI not initialised)."""
    if not launched_by_mpiexec():
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD


def rank_and_size(comm: Any) -> tuple[int, int]:
    if comm is None:
        return 0, 1
    return comm.Get_rank(), comm.Get_size()


def split_events(total: int, rank: int, nranks: int) -> range:
    """Rank ``rank``'s contiguous share of ``range(total)``: shares are disjoint and cover every event."""
    if not 0 <= rank < nranks:
        raise ValueError(f"rank {rank} is outside 0..{nranks - 1}")
    return range(total * rank // nranks, total * (rank + 1) // nranks)


def stride_events(rank: int, nranks: int, limit: int | None = None) -> range:
    """Rank ``rank``'s share by event index (``rank, rank + nranks, ...``), below ``limit`` if given.

    Shares are disjoint and together cover every index, however many events the run ends up with.
    """
    if not 0 <= rank < nranks:
        raise ValueError(f"rank {rank} is outside 0..{nranks - 1}")
    return range(rank, OPEN_END if limit is None else limit, nranks)


def is_open_ended(indices: range) -> bool:
    return indices.stop >= OPEN_END


def unread_bytes(fd: int) -> int:
    """Bytes written to the pipe ``fd`` that its reader has not read yet (0 for anything but a pipe)."""
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return 0
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


def abort(comm: Any, code: int = 1, drain_timeout: float = 5.0) -> None:
    """``MPI_Abort`` once the last lines this rank wrote have left its stdout/stderr pipes.

    Under mpiexec a rank's output is a pipe read by the launcher's proxy, which an abort tears down at
    once: the message saying why the job stopped was seen to be lost with it. So wait (bounded) until
    the proxy has read what is in the pipes.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + drain_timeout
    fds = [fd for fd in (1, 2) if unread_bytes(fd) > 0]
    while fds and time.monotonic() < deadline:
        time.sleep(0.01)
        fds = [fd for fd in fds if unread_bytes(fd) > 0]
    comm.Abort(code)
