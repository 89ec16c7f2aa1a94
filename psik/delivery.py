"""Callbacks delivered in the background, in order, with bounded retries, each outcome recorded.

A state change is recorded in status.csv at once; posting it to the job's callback URL never holds
that up. ``schedule(job)`` starts (at most one per job in a process) a thread that posts the job's
undelivered state changes in order. A lock on callbacks.csv keeps the supervisor, the service and
``psik deliver`` from posting the same change twice, and whoever holds the lock looks again after
releasing it, so a change recorded meanwhile by another process is not left behind. Each change gets
``certified.callbacks.deliver``'s bounded retries; its outcome (delivered or failed, attempts, last
problem) is appended to callbacks.csv, which ``psik status`` and the job record show. Short-lived
processes call ``flush(timeout)`` before exiting so their deliveries finish.
"""

from __future__ import annotations

import csv
import fcntl
import io
import logging
import threading
import time
from collections.abc import Sequence

from psik import safefs
from psik.jobdir import JobDir
from psik.models import CallbackDelivery, JobSpec, StatusEntry

log = logging.getLogger("psik")

_guard = threading.Lock()
_threads: dict[str, threading.Thread] = {}
_dirty: dict[str, bool] = {}


def payload(job: JobDir, entry: StatusEntry) -> dict[str, object]:
    return {"jobid": job.jobid, "jobndx": entry.jobndx, "state": entry.state.value, "info": entry.info}


def pending_count(spec: JobSpec, history: Sequence[StatusEntry], done: Sequence[CallbackDelivery]) -> int:
    if not spec.callback:
        return 0
    recorded = {d.seq for d in done}
    return sum(1 for seq in range(len(history)) if seq not in recorded)


def _pending(job: JobDir, spec: JobSpec) -> list[tuple[int, StatusEntry]]:
    recorded = {d.seq for d in job.deliveries()}
    return [(seq, e) for seq, e in enumerate(job.history()) if seq not in recorded]


def _post(job: JobDir, spec: JobSpec, seq: int, entry: StatusEntry) -> CallbackDelivery:
    from certified.callbacks import deliver

    assert spec.callback is not None
    result = deliver(spec.callback, payload(job, entry), spec.cb_secret)
    if not result.ok:
        log.warning("job %s run %d: callback %s to %s failed after %d attempt(s): %s", job.jobid,
                    entry.jobndx, entry.state.value, spec.callback, result.attempts, result.problem)
    return CallbackDelivery(seq=seq, time=time.time(), jobndx=entry.jobndx, state=entry.state,
                            delivered=result.ok, attempts=result.attempts, detail=result.problem)


def _append(fh: io.TextIOBase, d: CallbackDelivery) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(
        [d.seq, f"{d.time:.6f}", d.jobndx, d.state.value, "delivered" if d.delivered else "failed", d.attempts,
         d.detail.replace("\n", " ")])
    fh.write(buf.getvalue())
    fh.flush()


def deliver_pending(job: JobDir, wait: float = 0.0) -> int:
    """Post every undelivered state change of ``job`` in order; returns how many this call posted.

    Returns at once when another process or thread holds the job's delivery lock (it will post what is
    pending), unless ``wait`` seconds are given to wait for it.
    """
    spec = job.spec()
    if not spec.callback:
        return 0
    posted = 0
    while True:
        with safefs.open_file(job.path, "callbacks.csv", "a+", create=True) as fh:
            if not _lock(fh, wait):
                return posted
            try:
                for seq, entry in _pending(job, spec):
                    _append(fh, _post(job, spec, seq, entry))
                    posted += 1
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        if not _pending(job, spec):
            return posted


def _lock(fh: io.TextIOBase, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def schedule(job: JobDir) -> None:
    """Deliver ``job``'s pending callbacks in a background thread of this process (one per job)."""
    try:
        if not job.spec().callback:
            return
    except (OSError, ValueError) as exc:
        log.warning("job %s: cannot read its spec to deliver callbacks: %s", job.jobid, exc)
        return
    key = str(job.path)
    with _guard:
        _dirty[key] = True
        running = _threads.get(key)
        if running is not None and running.is_alive():
            return  # it looks again before it ends
        thread = threading.Thread(target=_drain, args=(job, key), name=f"psik-callbacks-{job.jobid}", daemon=True)
        _threads[key] = thread
        thread.start()


def _drain(job: JobDir, key: str) -> None:
    while True:
        with _guard:
            _dirty[key] = False
        try:
            deliver_pending(job)
        except Exception:  # a broken job folder must not kill the caller's process
            log.exception("job %s: delivering callbacks failed", job.jobid)
        with _guard:
            if not _dirty[key]:
                _threads.pop(key, None)
                _dirty.pop(key, None)
                return


def flush(timeout: float = 30.0) -> bool:
    """Wait (at most ``timeout`` seconds) for this process's deliveries; True when none is left running."""
    deadline = time.monotonic() + timeout
    while True:
        with _guard:
            running = [t for t in _threads.values() if t.is_alive()]
        if not running:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log.warning("%d job(s) still delivering callbacks after %g s; left for later", len(running), timeout)
            return False
        running[0].join(min(remaining, 0.5))
