"""PsikJobOperator and PsikJobTrigger against a real Psik-API process (local backend, real jobs), and the
sync and async Psik clients answering alike."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_lclstream.hooks.psik import PsikHook
from airflow_provider_lclstream.operators.psik import PsikJobOperator
from airflow_provider_lclstream.triggers.psik_job import PsikJobTrigger
from psik.client import PsikAPIError
from tests.airflow_provider.conftest import PsikApi, dag_file
from tests.psik.helpers import wait_for

WAIT = 120.0

JOB_DAG = """
    import json
    from datetime import UTC, datetime
    from airflow.sdk import DAG, task
    from airflow_provider_lclstream.operators.psik import PsikJobOperator

    with DAG({name!r}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC),
             params={{"greeting": "hello"}}) as dag:
        job = PsikJobOperator(task_id="job", psik_conn_id={conn!r}, poll_interval=0.5,
                              wait_for_completion={wait!r}, spec={spec!r})

        @task
        def record(outcome):
            with open({result!r}, "w") as fh:
                json.dump(outcome, fh)

        record(job.output)
"""


def run_job_dag(name: str, conn: str, spec: dict[str, Any], result: Path, wait: bool = True) -> str:
    dag = dag_file(name, JOB_DAG.format(name=name, conn=conn, spec=spec, result=str(result), wait=wait)).dag
    return str(dag.test().state)


def test_runs_a_real_job_and_streams_its_log(airflow_db: Path, psik_api: PsikApi, psik_conn: str, tmp_path: Path,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    spec = {"name": "greeter", "script": 'for i in 1 2 3; do echo "{{ params.greeting }} $i"; sleep 0.7; done'}
    result = tmp_path / "result.json"
    assert run_job_dag("provider_job_ok", psik_conn, spec, result) == "success"
    outcome = json.loads(result.read_text())
    assert outcome["state"] == "completed" and outcome["exit_code"] == 0
    assert PsikHook(psik_conn).logs(outcome["jobid"]) == "hello 1\nhello 2\nhello 3\n"  # the template was rendered
    log = capfd.readouterr().out  # the task log of a dag.test() run, with the trigger's lines
    streamed = re.findall(rf"\[job {outcome['jobid']} stdout\] (hello \d)", log)
    assert streamed == ["hello 1", "hello 2", "hello 3"]
    states = re.findall(rf"job {outcome['jobid']}: (\w+)", log)
    assert states[-1] == "completed" and "active" in states


def test_fire_and_forget_returns_the_job_id(airflow_db: Path, psik_api: PsikApi, psik_conn: str,
                                            tmp_path: Path) -> None:
    result = tmp_path / "result.json"
    assert run_job_dag("provider_job_nowait", psik_conn, {"script": "sleep 1"}, result, wait=False) == "success"
    jobid = json.loads(result.read_text())
    assert wait_for(lambda: PsikHook(psik_conn).status(jobid).state.terminal, WAIT, what="job end")


def test_a_failing_job_fails_the_task_with_state_exit_code_and_log(airflow_db: Path, psik_api: PsikApi,
                                                                   psik_conn: str, tmp_path: Path) -> None:
    spec = {"name": "breaker", "script": "echo working; echo 'oops: disk full' >&2; exit 3"}
    assert run_job_dag("provider_job_fail", psik_conn, spec, tmp_path / "result.json") == "failed"
    record = PsikHook(psik_conn).submit(spec)

    async def wait() -> dict[str, Any]:
        events = PsikJobTrigger(jobid=record.jobid, psik_conn_id=psik_conn, poll_interval=0.5).run()
        try:
            return (await asyncio.wait_for(anext(events), WAIT)).payload
        finally:
            await events.aclose()

    event = asyncio.run(wait())
    assert event["status"] == "error" and event["state"] == "failed" and event["exit_code"] == 3
    assert "[stderr] oops: disk full" in event["log_tail"] and "[stdout] working" in event["log_tail"]
    with pytest.raises(AirflowException, match=f"(?s)job {record.jobid} \\(breaker\\) failed: exit code 3.*oops"):
        PsikJobOperator(task_id="j", spec=spec).execute_complete({}, event)


def test_on_kill_cancels_the_job(psik_api: PsikApi, psik_conn: str) -> None:
    hook = PsikHook(psik_conn)
    record = hook.submit({"name": "long", "script": "sleep 300"})
    wait_for(lambda: hook.status(record.jobid).state == "active", WAIT, what="job active")

    async def kill() -> None:
        trigger = PsikJobTrigger(jobid=record.jobid, psik_conn_id=psik_conn, poll_interval=0.5)
        events = trigger.run()
        waiting = asyncio.ensure_future(anext(events))
        await asyncio.sleep(1.5)
        assert not waiting.done()
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await events.aclose()
        await trigger.on_kill()

    asyncio.run(kill())
    assert wait_for(lambda: hook.status(record.jobid).state == "canceled", WAIT, what="job canceled")


def test_sync_and_async_clients_answer_alike(psik_api: PsikApi, psik_conn: str) -> None:
    hook = PsikHook(psik_conn)
    with pytest.raises(PsikAPIError) as sync_err:
        hook.status("20260101T000000-000000")

    async def missing() -> PsikAPIError:
        client = await hook.aget_conn()
        try:
            backends = await client.backends()
            assert [b.name for b in backends] == [b.name for b in hook.backends()]
            with pytest.raises(PsikAPIError) as err:
                await client.get("20260101T000000-000000")
            return err.value
        finally:
            await client.aclose()

    async_err = asyncio.run(missing())
    assert (async_err.status, str(async_err)) == (sync_err.value.status, str(sync_err.value)) == (
        404, "Psik-API error 404: no job '20260101T000000-000000'")
    assert hook.test_connection() == (True, "Psik-API answered: backends default")
