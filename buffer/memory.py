"""Keep the buffer's resident memory close to what it holds.

glibc raises its mmap threshold after large blocks are freed, so later multi-MiB messages come from
the heap, which is not returned to the system when they are freed. Pinning the threshold keeps
every large message in its own mapping, released as soon as nng frees it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def pin_malloc_thresholds(mmap_threshold: int = 256 * 1024) -> bool:
    """True when glibc accepted the settings (no-op elsewhere)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 4 * mmap_threshold))
    log.debug("malloc thresholds pinned: %s", ok)
    return ok


def single_arena() -> bool:
    """Make every thread allocate from one malloc arena (call before threads start), so the blocks
    nng's I/O threads allocate and the sending thread frees are reused instead of spread over
    per-thread arenas."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError):
        return False
