"""A transfer record as a few lines a person reads (the JSON stays available for programs).

The buffer never looks inside a message, so its counts include each producer rank's end-of-rank marker
(the envelope that says how many data messages the rank sent); a consumer counts data messages. Both
figures are shown with that difference named, so "8 received" and "10 delivered" are never left to puzzle
over.

    for line in transfer_lines(client.status(transfer_id)):
        print(line)
"""

from __future__ import annotations

from datetime import datetime

from buffer.status import BufferStatus
from lclstream_api.models import TransferView
from lclstream_api.progress import human_bytes


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


def message_breakdown(messages: int, end_markers: int) -> str:
    """``D data messages and E end-of-rank markers (N messages)``, for N messages of which E are markers."""
    data = max(0, messages - end_markers)
    return (f"{data} data message{'s' * (data != 1)} and {end_markers} end-of-rank marker"
            f"{'s' * (end_markers != 1)} ({messages} messages)")


def delivered_reason(status: BufferStatus | None, ranks: int) -> str:
    """Why a transfer is complete: what its buffer passed on, every producer rank's end marker included."""
    return f"delivered {message_breakdown(status.messages_sent, ranks)}" if status else "every message delivered"


def transfer_lines(view: TransferView) -> list[str]:
    start = view.log[0].time if view.log else view.created
    end = view.log[-1].time if view.log else view.updated
    lines = [f"transfer {view.id} of {view.owner}: {view.state.value} at {_clock(end)}, {end - start:.1f} s after "
             f"the request" + (f": {view.reason}" if view.reason else "")]
    if view.log:
        steps = ", ".join(f"{t.state.value} +{t.time - start:.1f} s" for t in view.log)
        lines.append(f"  states: {steps}")
    metrics = view.metrics
    if metrics is not None:
        ranks = view.options.ranks
        # every rank ends with one marker; before the end, only the markers counted so far are in the figure
        markers = ranks if view.state.value == "completed" else None
        through = (message_breakdown(metrics.messages_sent, markers) if markers is not None
                   else f"{metrics.messages_sent} messages (end-of-rank markers included)")
        lines.append(f"  buffer: {metrics.state.value}; {metrics.messages_received} messages in; out: {through}; "
                     f"{human_bytes(metrics.bytes_sent)}; {metrics.producers_total} producer connection"
                     f"{'s' * (metrics.producers_total != 1)}, {metrics.consumers_total} consumer connection"
                     f"{'s' * (metrics.consumers_total != 1)}; {metrics.messages_direct} passed on without a copy")
    for name, job in sorted(view.jobs.items()):
        detail = f" ({job.info})" if job.info else ""
        lines.append(f"  {name} job {job.jobid}: {job.state}{detail}")
    return lines
