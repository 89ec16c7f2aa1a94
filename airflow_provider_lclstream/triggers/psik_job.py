"""``PsikJobTrigger``: wait, on the triggerer, until a Psi-k job ends, streaming its new log lines.

It only polls Psik-API (the job's record and its stdout/stderr), writes each state change and each
new output line of the job into the task log as it appears, and fires once when the job ends:
``status`` ``success`` for ``completed``; ``error`` naming the job, its state, exit code and last
log lines otherwise. ``on_kill`` (a user killing the deferred task) cancels the job.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_lclstream.cancel import acancel_killed
from airflow_provider_lclstream.hooks.psik import PsikHook
from airflow_provider_lclstream.triggers.polling import Poller
from psik.client import AsyncPsikClient, PsikAPIError
from psik.models import JobRecord, JobState

CLASSPATH = "airflow_provider_lclstream.triggers.psik_job.PsikJobTrigger"
LOG_TAIL = 20
STREAMS = ("stdout", "stderr")
_EXIT = re.compile(r"exit code (-?\d+)")


def exit_code(record: JobRecord) -> int | None:
    """The job's exit code, when Psi-k recorded one (``info`` of a finished job: "exit code N")."""
    match = _EXIT.search(record.info)
    if match:
        return int(match.group(1))
    return 0 if record.state is JobState.COMPLETED else None


def job_event(record: JobRecord, tail: list[str]) -> dict[str, Any]:
    """The TriggerEvent payload for a finished job."""
    code = exit_code(record)
    ok = record.state is JobState.COMPLETED
    message = f"job {record.jobid} ({record.spec.name}) {record.state.value}"
    if record.info:
        message += f": {record.info}"
    if not ok and tail:
        message += "\nlast log lines:\n  " + "\n  ".join(tail)
    return {"status": "success" if ok else "error", "jobid": record.jobid, "state": record.state.value,
            "info": record.info, "exit_code": code, "log_tail": tail, "message": message}


class PsikJobTrigger(BaseTrigger):
    """Polls one Psi-k job until it ends.

    :param jobid: the job.
    :param psik_conn_id: the ``psik`` connection.
    :param poll_interval: seconds between two looks at the job.
    :param stream_logs: copy the job's new stdout/stderr lines into the task log while waiting.
    :param cancel_on_kill: cancel the job when a user kills the deferred task.
    """

    def __init__(self, *, jobid: str, psik_conn_id: str = PsikHook.default_conn_name, poll_interval: float = 2.0,
                 stream_logs: bool = True, cancel_on_kill: bool = True) -> None:
        super().__init__()
        self.jobid = jobid
        self.psik_conn_id = psik_conn_id
        self.poll_interval = poll_interval
        self.stream_logs = stream_logs
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"jobid": self.jobid, "psik_conn_id": self.psik_conn_id,
                           "poll_interval": self.poll_interval, "stream_logs": self.stream_logs,
                           "cancel_on_kill": self.cancel_on_kill}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client = await PsikHook(self.psik_conn_id).aget_conn()
        poller = Poller(self.log, f"job {self.jobid}", self.poll_interval)
        lines: dict[str, list[str]] = {stream: [] for stream in STREAMS}
        history = 0
        try:
            while True:
                try:
                    record = await poller.fetch(lambda: client.get(self.jobid))
                    for entry in record.history[history:]:
                        self.log.info("job %s: %s%s", self.jobid, entry.state.value, f" ({entry.info})" if entry.info else "")
                    history = len(record.history)
                    if self.stream_logs or record.state.terminal:
                        await self._read_logs(client, poller, lines, final=record.state.terminal)
                except PsikAPIError as exc:
                    yield TriggerEvent({"status": "error", "jobid": self.jobid, "state": None, "info": "",
                                        "exit_code": None, "log_tail": [], "message": f"job {self.jobid}: {exc}"})
                    return
                if record.state.terminal:
                    tail = [f"[{s}] {line}" for s in STREAMS for line in lines[s][-LOG_TAIL:]][-LOG_TAIL:]
                    yield TriggerEvent(job_event(record, tail))
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await client.aclose()

    async def _read_logs(self, client: AsyncPsikClient, poller: Poller, lines: dict[str, list[str]],
                         final: bool) -> None:
        """Fetch stdout and stderr; log (when streaming) the lines not seen yet."""
        for stream in STREAMS:
            text = await poller.fetch(lambda s=stream: client.logs(self.jobid, s))
            new = text.splitlines()
            # a line still being written is completed by the next read: count only whole lines till the end
            whole = new if final or text.endswith("\n") else new[:-1]
            if self.stream_logs:
                for line in whole[len(lines[stream]):]:
                    self.log.info("[job %s %s] %s", self.jobid, stream, line)
            lines[stream] = whole

    async def on_kill(self) -> None:
        if self.cancel_on_kill:
            await acancel_killed(self.log, f"job {self.jobid}", PsikHook(self.psik_conn_id),
                                 lambda client: client.cancel(self.jobid))
