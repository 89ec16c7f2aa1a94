"""Keep the buffer's resident memory close to what it holds.

nng allocates each received message on one of its I/O threads and the sending thread frees it. With
glibc's default per-thread arenas those blocks spread over several arenas and freed space is not
reused across them; one arena lets every new message reuse the space of one sent before. (Pinning
the mmap threshold instead returns every message to the system at once, but the page faults of
re-mapping it cost about twice the kernel time per byte; measured with bench/buffer_bench.py.)
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8


def single_arena() -> bool:
    """Make all threads allocate from one malloc arena; call before any thread starts. False if not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError):
        return False


def resident_bytes(pid: int) -> int:
    """Resident memory (VmRSS) of a process in bytes, from /proc; 0 where it is not reported."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
