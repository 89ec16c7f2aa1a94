"""What happened to a run's streaming, judged from the services' own records: the verdict, the text a
person reads on the run, and the JSON body; and the consumer's report read from its output."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from airflow_provider_lclstream.run_dags.outcome import Outcome, consumer_report
from elog.records import RunRecord
from lclstream_api.models import TransferView
from psik.models import JobRecord

T0 = 1_796_000_000.0
KEY = "mfxp1001121/12"


def transfer(state: str = "completed", reason: str = "", messages: int = 31, nbytes: int = 4_000_000) -> TransferView:
    log = [{"time": T0, "state": "requested"}, {"time": T0 + 0.1, "state": "starting"},
           {"time": T0 + 1.5, "state": "streaming"}, {"time": T0 + 11.5, "state": state, "reason": reason}]
    return TransferView.model_validate({
        "id": "t1", "state": state, "url": "tls+tcp://127.0.0.1:20001", "owner": "airflow", "created": T0,
        "updated": T0 + 11.5, "reason": reason, "config_hash": "h", "options": {}, "protected": True, "log": log,
        "jobs": {}, "metrics": {"state": "done", "pid": 1, "recv_url": "r", "send_url": "s", "started_at": T0,
                                "time": T0 + 11, "messages_sent": messages, "bytes_sent": nbytes,
                                "consumers_total": 1}})


def job(state: str = "completed", info: str = "") -> JobRecord:
    return JobRecord.model_validate({
        "jobid": "20261130T043244-db2f42", "owner": "hpc", "spec": {"name": "lclstream-consumer", "script": "x"},
        "jobndx": 1, "state": state, "info": info, "history": [{"time": T0, "jobndx": 1, "state": state}]})


def run(event_count: int | None = 120) -> RunRecord:
    return RunRecord.model_validate({
        "instrument": "MFX", "experiment": "mfxp1001121", "run": 12, "state": "closed",
        "start_time": datetime.fromtimestamp(T0, UTC), "stop_time": datetime.fromtimestamp(T0 + 12, UTC),
        "event_count": event_count, "opened_by": "daq"})


def report(events: int = 120, complete: bool = True, gaps: list[str] | None = None) -> dict[str, Any]:
    return {"transfer_id": "t1", "messages": 30, "events": events, "bytes": 3_900_000, "complete": complete,
            "gaps": gaps or [], "first_message_at": T0 + 2.0, "last_message_at": T0 + 11.0}


def test_a_complete_stream() -> None:
    out = Outcome.of(KEY, transfer=transfer(), job=job(), report=report(), run=run(), context={"dag_id": "d"})
    assert out.ok and out.failure is None
    assert out.body["events_delivered"] == 120 == out.body["run_event_count"] and out.body["count_matches"] is True
    assert out.body["consumer_job_id"] == "20261130T043244-db2f42" and out.body["transfer_id"] == "t1"
    assert out.body["duration_s"] == 10.0 and out.body["events_per_s"] == 12.0 and out.body["dag_id"] == "d"
    assert out.text.splitlines() == [
        f"LCLStream: run {KEY} streamed",
        "transfer t1 completed: 31 messages, 3.8 MiB in 10.0 s, 390.6 KiB/s",
        "consumer job 20261130T043244-db2f42 completed: received 120 events (12.0 events/s)",
        "delivered count equals the run's event count (120)"]


def test_a_failed_consumer_is_named_first_with_its_reason() -> None:
    out = Outcome.of(KEY, transfer=transfer("canceled", "canceled by airflow", 0, 0),
                     job=job("failed", "exit code 3: cannot write to /scratch"), report=None, run=run())
    assert not out.ok
    assert out.failure == ("consumer job 20261130T043244-db2f42 failed: exit code 3: cannot write to /scratch; "
                           "transfer t1 canceled: canceled by airflow")
    assert out.text.splitlines()[0] == f"LCLStream: run {KEY} NOT streamed completely"
    assert out.body["events_delivered"] is None and out.body["count_matches"] is None


def test_a_count_that_differs_from_the_run_fails_the_verdict() -> None:
    out = Outcome.of(KEY, transfer=transfer(), job=job(), report=report(events=118), run=run())
    assert not out.ok and out.body["count_matches"] is False
    assert "the consumer received 118 events, the run recorded 120" in (out.failure or "")
    assert "delivered count DIFFERS FROM the run's event count (120)" in out.text


def test_an_incomplete_ledger_fails_the_verdict() -> None:
    out = Outcome.of(KEY, transfer=transfer(), job=job(), report=report(complete=False, gaps=["rank 1: 3 missing"]),
                     run=run())
    assert not out.ok and "stream incomplete: rank 1: 3 missing" in (out.failure or "")


def test_a_followed_transfer_needs_no_consumer_of_its_own() -> None:
    out = Outcome.of(KEY, transfer=transfer(), run=run(), consumer_expected=False)
    assert out.ok and "consumer_job_id" not in out.body
    assert "the consumer job of the DAG run started by the run's start reports the delivery" in out.text
    assert "the run recorded 120 events" in out.text


def test_no_transfer_is_a_failure() -> None:
    out = Outcome.of(KEY, transfer=None, problems=["the transfer was not made: LCLStream-API refused"], run=run())
    assert not out.ok and out.failure == "the transfer was not made: LCLStream-API refused"


def test_a_custom_consumer_that_reports_nothing_is_judged_by_its_job() -> None:
    out = Outcome.of(KEY, transfer=transfer(), job=job(), report=None, run=run())
    assert out.ok and "reported no event count" in out.text and out.body["count_matches"] is None


def test_the_consumer_report_is_its_last_json_line_with_events() -> None:
    summary = json.dumps(report(events=7))
    stdout = f"starting\n{{\"not\": \"it\"}}\n{summary}\n{{broken json\ndone\n"
    assert consumer_report(stdout) == report(events=7)
    assert consumer_report("no json here\n") is None
