"""What happened to one run's streaming, in words for the run's record and in JSON for programs.

The facts come from the services, not from Airflow's task states: the transfer as LCLStream-API last
saw it, the consumer job as Psik-API saw it, the consumer's own report (the last JSON line with
``events`` on its standard output, which ``lclstream pull --summary-json -`` prints), and the run's
record in the ELog (its event count). The verdict: the transfer completed, the consumer job completed,
its ledger is complete, and the events it received equal the run's event count (when both are known).

    outcome = Outcome.of(key, transfer=view, job=record, report=report, run=elog_record)
    outcome.text, outcome.body, outcome.ok, outcome.failure
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from airflow_provider_lclstream.transfer_wait import summary as transfer_summary
from elog.records import RunRecord, RunState
from lclstream_api.models import TransferView
from lclstream_api.progress import human_bytes
from psik.models import JobRecord, JobState

PREFIX = "LCLStream"


def consumer_report(stdout: str) -> dict[str, Any] | None:
    """The consumer's own account of what it received: the last line of its output that is a JSON object
    with ``events`` (``lclstream pull --summary-json -``); None when it printed none."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "events" in data:
                return data
    return None


class Outcome(BaseModel):
    ok: bool
    failure: str | None
    text: str
    body: dict[str, Any]

    @classmethod
    def of(cls, key: str, *, transfer: TransferView | None, job: JobRecord | None = None,
           report: dict[str, Any] | None = None, run: RunRecord | None = None, consumer_expected: bool = True,
           problems: list[str] | None = None, context: dict[str, Any] | None = None) -> Outcome:
        """Judge one run's streaming. ``consumer_expected``: this DAG run ran the consumer (False when it only
        followed a transfer another DAG run consumes); ``problems``: what went wrong before the services
        could say (a transfer never requested, say)."""
        failures = list(problems or [])
        body: dict[str, Any] = {"run": key, **(context or {})}
        if consumer_expected:  # the consumer's own failure says most: first
            failures += cls._consumer(body, job, report, transfer is not None)
        summary = transfer_summary(transfer) if transfer is not None else None
        if summary is not None:
            body.update({"transfer_id": summary["transfer_id"], "transfer_state": summary["state"],
                         "messages_delivered": summary["messages_delivered"],
                         "bytes_delivered": summary["bytes_delivered"], "duration_s": summary["duration_s"],
                         "bytes_per_s": summary["bytes_per_s"]})
            if summary["state"] != "completed":
                failures.append(f"transfer {summary['transfer_id']} {summary['state']}"
                                + (f": {summary['reason']}" if summary.get("reason") else ""))
        elif not failures:
            failures.append("no transfer was made")
        event_count = run.event_count if run is not None and run.state == RunState.CLOSED else None
        body["run_event_count"] = event_count
        delivered = body.get("events_delivered")
        if delivered is not None and event_count is not None:
            body["count_matches"] = delivered == event_count
            if delivered != event_count:
                failures.append(f"the consumer received {delivered} events, the run recorded {event_count}")
        else:
            body["count_matches"] = None
        duration = body.get("duration_s") or 0
        if delivered is not None and duration > 0:
            body["events_per_s"] = round(delivered / duration, 3)
        ok = not failures
        body["ok"] = ok
        failure = "; ".join(failures) if failures else None
        return cls(ok=ok, failure=failure, text=cls._text(key, body, failure, consumer_expected), body=body)

    @staticmethod
    def _consumer(body: dict[str, Any], job: JobRecord | None, report: dict[str, Any] | None,
                  transfer_made: bool) -> list[str]:
        failures = []
        if job is None:
            body["consumer_job_id"] = None
            return ["no consumer job was started"] if transfer_made else []
        body.update({"consumer_job_id": job.jobid, "consumer_state": job.state.value, "consumer_info": job.info})
        if job.state is not JobState.COMPLETED:
            failures.append(f"consumer job {job.jobid} {job.state.value}" + (f": {job.info}" if job.info else ""))
        if report is not None:
            body.update({"events_delivered": report.get("events"), "consumer_messages": report.get("messages"),
                         "consumer_bytes": report.get("bytes"), "ledger_complete": report.get("complete"),
                         "first_message_at": report.get("first_message_at"),
                         "last_message_at": report.get("last_message_at")})
            if report.get("complete") is False and job.state is JobState.COMPLETED:
                failures.append(f"consumer job {job.jobid}: stream incomplete: {'; '.join(report.get('gaps') or [])}")
        else:
            body["events_delivered"] = None
        return failures

    @staticmethod
    def _text(key: str, body: dict[str, Any], failure: str | None, consumer_expected: bool) -> str:
        lines = [f"{PREFIX}: run {key} " + ("streamed" if failure is None else "NOT streamed completely")]
        if body.get("transfer_id"):
            rate = f", {human_bytes(body['bytes_per_s'])}/s" if body.get("bytes_per_s") else ""
            lines.append(f"transfer {body['transfer_id']} {body['transfer_state']}: {body['messages_delivered']} "
                         f"messages, {human_bytes(body['bytes_delivered'])} in {body['duration_s']:.1f} s{rate}")
        if consumer_expected and body.get("consumer_job_id"):
            delivered = body.get("events_delivered")
            got = f"received {delivered} events" if delivered is not None else "reported no event count"
            rate = f" ({body['events_per_s']:.1f} events/s)" if body.get("events_per_s") else ""
            lines.append(f"consumer job {body['consumer_job_id']} {body['consumer_state']}: {got}{rate}")
        elif not consumer_expected:
            lines.append("the consumer job of the DAG run started by the run's start reports the delivery")
        count = body.get("run_event_count")
        if body.get("count_matches") is not None:
            verdict = "equals" if body["count_matches"] else "DIFFERS FROM"
            lines.append(f"delivered count {verdict} the run's event count ({count})")
        elif count is not None:
            lines.append(f"the run recorded {count} events")
        if failure:
            lines.append(f"problem: {failure}")
        return "\n".join(lines)
