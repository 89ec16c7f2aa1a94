"""Operators and sensors: typed arguments checked at DAG parse time with the argument named; the
``execute_complete`` paths (success returns the summary, failure raises the service's own message)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_lclstream.arguments import ArgumentError, default_deferrable
from airflow_provider_lclstream.operators.psik import PsikJobOperator
from airflow_provider_lclstream.operators.transfer import LCLStreamTransferOperator
from airflow_provider_lclstream.sensors.buffer import BufferSensor
from airflow_provider_lclstream.sensors.run_event import RunEventSensor
from tests.lclstream_api.harness import synthetic_config


@pytest.fixture
def dag() -> Any:
    with DAG("provider_args", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)) as d:
        yield d


def test_good_arguments_build(dag: Any) -> None:
    op = LCLStreamTransferOperator(task_id="t", config=synthetic_config(), options={"ranks": 2, "tls": False})
    assert op.options == {"ranks": 2, "tls": False} and op.wait_for == "completed"
    templated = LCLStreamTransferOperator(task_id="t2", config="cfg.yaml", options={"ranks": "{{ params.ranks }}"})
    assert templated.options["ranks"] == "{{ params.ranks }}"  # checked once rendered
    job = PsikJobOperator(task_id="j", spec={"name": "consumer", "script": "hostname"})
    assert job.spec["script"] == "hostname"
    BufferSensor(task_id="b", transfer_id="{{ ti.xcom_pull(task_ids='t', key='transfer_id') }}", consumers=1)
    RunEventSensor(task_id="r")


@pytest.mark.parametrize(("make", "words"), [
    (lambda: LCLStreamTransferOperator(task_id="t", config=synthetic_config(), options={"ranks": 0}),
     "LCLStreamTransferOperator(task_id='t'): options.ranks: Input should be greater than or equal to 1"),
    (lambda: LCLStreamTransferOperator(task_id="t", config=synthetic_config(), options={"colour": "red"}),
     "options.colour: Extra inputs are not permitted"),
    (lambda: LCLStreamTransferOperator(task_id="t", config=synthetic_config(), wait_for="done"),
     "wait_for: must be one of ['completed', 'starting', 'streaming'], got 'done'"),
    (lambda: LCLStreamTransferOperator(task_id="t", config={"event_source": {"type": "Nope"}}),
     "config: config is not a valid streamer config"),
    (lambda: LCLStreamTransferOperator(task_id="t", config=42), "config: a template file name"),
    (lambda: LCLStreamTransferOperator(task_id="t", config="c.yaml", poll_interval=0), "poll_interval: must be"),
    (lambda: PsikJobOperator(task_id="j", spec={"name": "x"}), "spec.script: Field required"),
    (lambda: PsikJobOperator(task_id="j", spec={"script": "x", "backend": "bad name"}), "spec.backend"),
    (lambda: BufferSensor(task_id="b", transfer_id="x"), "give at least one of consumers, streaming, drained"),
    (lambda: BufferSensor(task_id="b", transfer_id="x", consumers=-2), "consumers: Input should be greater"),
    (lambda: RunEventSensor(task_id="r", kinds=["run_pause"]), "kinds.0"),
])
def test_bad_arguments_fail_at_parse_time_naming_the_argument(dag: Any, make: Any, words: str) -> None:
    with pytest.raises(ArgumentError) as err:
        make()
    assert words in str(err.value)


def test_deferrable_by_default_unless_the_deployment_says_otherwise(monkeypatch: pytest.MonkeyPatch, dag: Any) -> None:
    monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
    assert default_deferrable() is True
    assert LCLStreamTransferOperator(task_id="t", config="c.yaml").deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "false")
    assert default_deferrable() is False
    assert PsikJobOperator(task_id="j", spec={"script": "x"}).deferrable is False
    assert BufferSensor(task_id="b", transfer_id="x", drained=True, deferrable=True).deferrable is True


SUMMARY = {"transfer_id": "t1", "url": "tcp://h:1", "state": "completed", "reason": "", "messages_delivered": 10,
           "bytes_delivered": 1000, "consumers": 1, "duration_s": 2.0, "messages_per_s": 5.0, "bytes_per_s": 500.0}


def test_transfer_execute_complete(dag: Any) -> None:
    op = LCLStreamTransferOperator(task_id="t", config="c.yaml")
    ok = {"status": "success", "transfer_id": "t1", "message": "transfer t1 reached state completed", "summary": SUMMARY}
    assert op.execute_complete({}, ok) == SUMMARY
    failed = {"status": "error", "transfer_id": "t1", "summary": SUMMARY,
              "message": "transfer t1 failed: producer job failed: exit code 1\nlast log lines:\n  [producer j] boom"}
    with pytest.raises(AirflowFailException, match="(?s)t1 failed: producer job failed.*boom"):
        op.execute_complete({}, failed)
    sensor = BufferSensor(task_id="b", transfer_id="t1", consumers=1)
    assert sensor.execute_complete({}, ok) == SUMMARY


def test_job_execute_complete(dag: Any) -> None:
    op = PsikJobOperator(task_id="j", spec={"script": "x"})
    ok = {"status": "success", "jobid": "j1", "state": "completed", "info": "exit code 0", "exit_code": 0,
          "log_tail": [], "message": "job j1 (job) completed"}
    assert op.execute_complete({}, ok) == {"jobid": "j1", "state": "completed", "info": "exit code 0", "exit_code": 0}
    bad = {**ok, "status": "error", "state": "failed", "exit_code": 3,
           "message": "job j1 (job) failed: exit code 3\nlast log lines:\n  [stdout] oops"}
    with pytest.raises(AirflowException, match="(?s)failed: exit code 3.*oops"):
        op.execute_complete({}, bad)


def test_run_event_sensor_returns_the_event(dag: Any) -> None:
    event = {"type": "run_stop", "key": "mfx1/3", "experiment": "mfx1", "run": 3}
    assert RunEventSensor(task_id="r").execute_complete({}, event) == event
