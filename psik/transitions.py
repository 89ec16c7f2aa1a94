"""The one place a job changes state: append status.csv, log one line, post the signed callback."""

from __future__ import annotations

import logging

from psik.jobdir import JobDir, TransitionRefused
from psik.models import JobState, StatusEntry

log = logging.getLogger("psik")


def callback_payload(job: JobDir, entry: StatusEntry) -> dict[str, object]:
    return {"jobid": job.jobid, "jobndx": entry.jobndx, "state": entry.state.value, "info": entry.info}


def notify(job: JobDir, entry: StatusEntry) -> bool:
    """POST the transition to the job's callback URL (signed when it has a secret). Never raises."""
    spec = job.spec()
    if not spec.callback:
        return True
    from certified.callbacks import post_signed

    try:
        ok = post_signed(spec.callback, callback_payload(job, entry), spec.cb_secret)
    except Exception as exc:  # a failed callback never changes the job's outcome
        log.warning("job %s run %d: callback to %s raised %s", job.jobid, entry.jobndx, spec.callback, exc)
        return False
    if not ok:
        log.warning("job %s run %d: callback %s to %s failed after retries",
                    job.jobid, entry.jobndx, entry.state.value, spec.callback)
    return ok


def reach(job: JobDir, jobndx: int, state: JobState | str, info: str = "", *,
          new_run: bool = False, strict: bool = False) -> StatusEntry | None:
    """Record a transition and announce it.

    A refused transition (backwards, or out of a finished run) returns None and is logged, or raises
    ``TransitionRefused`` when ``strict``. ``new_run`` allocates the next run index (for re-runs).
    """
    try:
        entry = job.append_status(jobndx, JobState(state), info, new_run=new_run)
    except TransitionRefused as exc:
        if strict:
            raise
        log.info("job %s: %s", job.jobid, exc)
        return None
    log.info("job %s run %d -> %s%s", job.jobid, entry.jobndx, entry.state.value, f" ({info})" if info else "")
    notify(job, entry)
    return entry
