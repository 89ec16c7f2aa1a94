"""The one place a job changes state: append status.csv, log one line, schedule the signed callback.

The callback is posted in the background (``psik.delivery``): a slow or dead callback URL never
delays the state change itself, nor whatever the job does next.
"""

from __future__ import annotations

import logging

from psik import delivery
from psik.jobdir import JobDir, TransitionRefused
from psik.models import JobState, StatusEntry

log = logging.getLogger("psik")


def reach(job: JobDir, jobndx: int, state: JobState | str, info: str = "", *,
          new_run: bool = False, strict: bool = False, deliver: bool = True) -> StatusEntry | None:
    """Record a transition and announce it.

    A refused transition (backwards, or out of a finished run) returns None and is logged, or raises
    ``TransitionRefused`` when ``strict``. ``new_run`` allocates the next run index (for re-runs).
    ``deliver=False`` leaves the callback to a later ``psik deliver`` (job scripts that deliver in the
    background themselves).
    """
    try:
        entry = job.append_status(jobndx, JobState(state), info, new_run=new_run)
    except TransitionRefused as exc:
        if strict:
            raise
        log.info("job %s: %s", job.jobid, exc)
        return None
    log.info("job %s run %d -> %s%s", job.jobid, entry.jobndx, entry.state.value, f" ({info})" if info else "")
    if deliver:
        delivery.schedule(job)
    return entry
