"""The transfer state machine: states, allowed transitions, and a timestamped transition log.

::

    requested -> starting -> streaming -> draining -> completed

Any non-terminal state may go to ``failed`` or ``canceled``; a stage may be skipped forwards when a
short stream moves faster than the service observes it (starting -> draining, starting -> completed).

``completed``, ``failed`` and ``canceled`` are terminal. Every transition is kept with its time and
reason so a transfer record says how it got where it is.
"""

from __future__ import annotations

import time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class TransferState(StrEnum):
    REQUESTED = "requested"
    STARTING = "starting"
    STREAMING = "streaming"
    DRAINING = "draining"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({TransferState.COMPLETED, TransferState.FAILED, TransferState.CANCELED})

_ENDINGS = {TransferState.FAILED, TransferState.CANCELED}
ALLOWED: dict[TransferState, frozenset[TransferState]] = {
    TransferState.REQUESTED: frozenset({TransferState.STARTING, *_ENDINGS}),
    # a short stream can finish between two observations: starting -> completed is allowed
    TransferState.STARTING: frozenset({TransferState.STREAMING, TransferState.DRAINING, TransferState.COMPLETED,
                                       *_ENDINGS}),
    TransferState.STREAMING: frozenset({TransferState.DRAINING, TransferState.COMPLETED, *_ENDINGS}),
    TransferState.DRAINING: frozenset({TransferState.COMPLETED, *_ENDINGS}),
    TransferState.COMPLETED: frozenset(),
    TransferState.FAILED: frozenset(),
    TransferState.CANCELED: frozenset(),
}


class TransitionError(ValueError):
    """A transition the state machine does not allow."""


class Transition(BaseModel):
    """One entry of a transfer's log."""

    model_config = ConfigDict(extra="forbid")

    time: float
    state: TransferState
    reason: str = ""


def check_transition(current: TransferState, new: TransferState) -> None:
    if new not in ALLOWED[current]:
        allowed = ", ".join(sorted(ALLOWED[current])) or "none (terminal state)"
        raise TransitionError(f"transfer cannot go from {current} to {new}; allowed: {allowed}")


def can_transition(current: TransferState, new: TransferState) -> bool:
    return new in ALLOWED[current]


def transition(log: list[Transition], new: TransferState, reason: str = "",
               now: float | None = None) -> list[Transition]:
    """Return ``log`` with ``new`` appended, after checking it is allowed from the last state."""
    if log:
        check_transition(log[-1].state, new)
    elif new is not TransferState.REQUESTED:
        raise TransitionError(f"a transfer starts in {TransferState.REQUESTED}, not {new}")
    return [*log, Transition(time=time.time() if now is None else now, state=new, reason=reason)]
