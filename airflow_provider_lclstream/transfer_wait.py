"""What it means to wait for a transfer: the condition, the verdict on one status, and the words.

One piece of logic for the three places that wait for a transfer (the trigger, the operator's
blocking wait, the sensor's poke), so they agree on when a wait succeeds, when it can never succeed
(the transfer ended in failed or canceled, or ended without meeting the condition) and what the
task log and the XCom summary say.

    condition = TransferCondition(state="streaming", consumers=1)
    verdict = condition.check(view)        # Verdict(done=False, failed=False, reason=...)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lclstream_api.models import TransferView
from lclstream_api.states import TransferState

# The order a transfer moves through; reaching a later stage means an earlier one was passed.
STAGES = (TransferState.REQUESTED, TransferState.STARTING, TransferState.STREAMING, TransferState.DRAINING,
          TransferState.COMPLETED)
BAD_ENDS = frozenset({TransferState.FAILED, TransferState.CANCELED})
LOG_TAIL = 20


class TransferCondition(BaseModel):
    """What to wait for; every condition given must hold.

    ``state``: the transfer reached this stage (or a later one). ``consumers``: at least this many
    consumers connected to its buffer (counted over the stream's life). ``messages``: at least this
    many messages delivered to consumers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: Literal["starting", "streaming", "draining", "completed"] | None = None
    consumers: int | None = Field(None, ge=1)
    messages: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _something(self) -> TransferCondition:
        if self.state is None and self.consumers is None and self.messages is None:
            raise ValueError("give at least one of state, consumers, messages")
        return self

    def describe(self) -> str:
        parts = [f"state {self.state}" if self.state else "",
                 f">= {self.consumers} consumers" if self.consumers else "",
                 f">= {self.messages} messages delivered" if self.messages else ""]
        return " and ".join(p for p in parts if p)

    def met(self, view: TransferView) -> bool:
        if self.state is not None:
            if view.state in BAD_ENDS or STAGES.index(view.state) < STAGES.index(TransferState(self.state)):
                return False
        metrics = view.metrics
        if self.consumers is not None and (metrics is None or metrics.consumers_total < self.consumers):
            return False
        return self.messages is None or (metrics is not None and metrics.messages_sent >= self.messages)

    def check(self, view: TransferView) -> Verdict:
        """Done when the condition holds; failed when the transfer failed or was canceled (whatever it
        reached before) or completed without meeting the condition."""
        if view.state in BAD_ENDS:
            return Verdict(done=True, failed=True,
                           reason=f"transfer {view.id} {view.state.value}: {view.reason or view.state.value}")
        if self.met(view):
            return Verdict(done=True, failed=False, reason=f"transfer {view.id} reached {self.describe()}")
        if view.state.terminal:
            return Verdict(done=True, failed=True, reason=f"transfer {view.id} completed without reaching "
                                                          f"{self.describe()}")
        return Verdict(done=False, failed=False, reason=f"transfer {view.id} is {view.state.value}")


class Verdict(BaseModel):
    """The outcome of looking at a transfer once: ``done`` (stop waiting) and ``failed`` (the task fails)."""

    model_config = ConfigDict(frozen=True)

    done: bool
    failed: bool
    reason: str


def transitions(view: TransferView, seen: int) -> list[str]:
    """Log lines for the state changes after the first ``seen`` ones of the transfer's log."""
    return [f"transfer {view.id}: {t.state.value}" + (f" ({t.reason})" if t.reason else "") for t in view.log[seen:]]


def log_tail(view: TransferView, lines: int = LOG_TAIL) -> list[str]:
    """The last output lines of the transfer's jobs (buffer, producers), each named by its job."""
    tail: list[str] = []
    for name, job in view.jobs.items():
        tail += [f"[{name} {job.jobid}] {line}" for line in job.log_tail[-lines:]]
    return tail[-lines:]


def failure_message(view: TransferView, reason: str) -> str:
    """The service's own reason, the transfer id and the last job output lines, for the task's error."""
    tail = log_tail(view)
    text = reason if view.id in reason else f"transfer {view.id}: {reason}"
    return text + ("\nlast log lines:\n  " + "\n  ".join(tail) if tail else "")


def summary(view: TransferView) -> dict[str, Any]:
    """The XCom summary of a transfer: id, url, state, what was delivered, how long it took, rates.

    Messages and bytes are the buffer's counts of what it sent to consumers: the data messages plus
    each producer rank's end-of-stream message (the buffer never looks inside a message).
    """
    started = next((t.time for t in view.log if t.state is TransferState.STREAMING), view.created)
    ended = next((t.time for t in view.log if t.state.terminal), view.updated)
    duration = max(ended - started, 0.0)
    metrics = view.metrics
    messages = metrics.messages_sent if metrics else 0  # as the buffer counts them (each rank's end message too)
    nbytes = metrics.bytes_sent if metrics else 0
    return {"transfer_id": view.id, "url": view.url, "state": view.state.value, "reason": view.reason,
            "messages_delivered": messages, "bytes_delivered": nbytes,
            "consumers": metrics.consumers_total if metrics else 0, "duration_s": round(duration, 3),
            "messages_per_s": round(messages / duration, 3) if duration > 0 else None,
            "bytes_per_s": round(nbytes / duration, 1) if duration > 0 else None}


def event_payload(view: TransferView, verdict: Verdict) -> dict[str, Any]:
    """The TriggerEvent payload that ends a wait (also built by the operators when no wait is needed)."""
    failed = verdict.failed
    return {"status": "error" if failed else "success", "transfer_id": view.id,
            "message": failure_message(view, verdict.reason) if failed else verdict.reason,
            "summary": summary(view)}
