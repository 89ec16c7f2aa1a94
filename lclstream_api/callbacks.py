"""Which signed callbacks a transfer accepts: states only move forward.

A correct signature proves a callback comes from something holding the transfer's secret (its buffer,
its jobs), not that what it says is current: a delayed, replayed or forged-from-inside callback could
report an earlier state. ``check_callback`` decides before the service answers, from the stored
record, and raises ``CallbackRefused`` (409, or 422 for a body that is not a status) so the caller
answers with it and changes nothing:

* buffer statuses: ``waiting < streaming < draining < done | failed | canceled``; an earlier state than
  the recorded one, another final state, or the same state with an older ``time`` is refused;
* job callbacks (Psi-k's ``{"jobid", "jobndx", "state", "info"}``): ``new < queued < active <
  completed | failed | canceled`` for a job of this transfer, compared with its recorded state.

It takes no lock: the reconciler applies accepted callbacks later and keeps only newer statuses, so a
record never goes back even when it moved on between the decision and the update.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from buffer.status import BufferStatus
from certified.api_errors import quoted
from lclstream_api.models import TransferRecord
from psik.models import JobState

BUFFER, JOB = "buffer", "job"


class CallbackRefused(Exception):
    """A verified callback the transfer does not take; ``status`` is 409 or 422, ``field`` the body field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class JobCallback(BaseModel):
    """What Psi-k posts on each job state change (fields it may add later are ignored)."""

    model_config = ConfigDict(extra="ignore")

    jobid: str
    jobndx: int = 1
    state: JobState
    info: str = ""


def _parse(model: type[BaseModel], body: object) -> BaseModel:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise CallbackRefused(422, f"not a {model.__name__} callback: {err['msg']}", field) from None


def check_buffer_status(record: TransferRecord, body: object) -> BufferStatus:
    """The status in ``body`` if it moves the transfer's recorded buffer status forward (or repeats it)."""
    status = _parse(BufferStatus, body)
    assert isinstance(status, BufferStatus)
    recorded = record.buffer_status
    if recorded is None:
        return status
    new, old = status.state, recorded.state
    if new.rank < old.rank:
        raise CallbackRefused(409, f"buffer status {new.value!r} is earlier than the recorded {old.value!r} of "
                                   f"transfer {record.id}; a transfer's state never goes back", "state")
    if new != old and old.final:
        raise CallbackRefused(409, f"the buffer of transfer {record.id} already ended {old.value!r}; "
                                   f"it cannot become {new.value!r}", "state")
    if new == old and status.time < recorded.time:
        raise CallbackRefused(409, f"buffer status of {status.time:.3f} is older than the recorded one of "
                                   f"{recorded.time:.3f} (transfer {record.id}); a transfer's state never goes back",
                              "time")
    return status


def check_job_state(record: TransferRecord, body: object) -> JobCallback:
    """The job callback in ``body`` if it does not move the recorded state of that job back."""
    event = _parse(JobCallback, body)
    assert isinstance(event, JobCallback)
    known = {job.jobid: (name, job) for name, job in record.jobs.items()}
    if event.jobid not in known:
        if len(record.jobs) >= 2:  # every job of the transfer is known: this one is not among them
            raise CallbackRefused(422, f"job {quoted(event.jobid)} is not a job of transfer {record.id}", "jobid")
        return event  # its job may be being submitted right now; the reconciler reads its folder
    name, job = known[event.jobid]
    try:
        old = JobState(job.state)
    except ValueError:
        return event
    if event.state.rank < old.rank:
        raise CallbackRefused(409, f"{name} job {event.jobid} state {event.state.value!r} is earlier than its "
                                   f"recorded {old.value!r} (transfer {record.id}); a transfer's state never "
                                   "goes back", "state")
    if event.state != old and old.terminal:
        raise CallbackRefused(409, f"{name} job {event.jobid} of transfer {record.id} already ended "
                                   f"{old.value!r}; it cannot become {event.state.value!r}", "state")
    return event


def check_callback(kind: str, record: TransferRecord, body: object) -> BufferStatus | JobCallback:
    """Raise ``CallbackRefused`` for a callback that would move ``record`` back; else return what it says."""
    if kind == BUFFER:
        return check_buffer_status(record, body)
    return check_job_state(record, body)
