"""``lclstream_manual`` through Airflow's REST API v2: a past run streamed again into a job of its own;
a form with a bad field refused before anything starts; a consumer job that fails fails the DAG run
with its reason, cancels the transfer, and the run's record says so."""

from __future__ import annotations

import pytest

from airflow_provider_lclstream.local_site import AirflowClient, AirflowError
from tests.e2e.helpers import Site

MANUAL = "lclstream_manual"


def test_a_past_run_is_streamed_again_from_the_rest_api(e2e_site: Site, airflow_api: AirflowClient,
                                                        experiment: str) -> None:
    record = e2e_site.take_run(experiment, "--events", "18", "--rate", "30", "--no-kafka")
    before = {t.id for t in e2e_site.transfers()}
    run = airflow_api.trigger(MANUAL, conf={"experiment": experiment, "run": record.run, "ranks": 2,
                                            "batch_size": 3, "compression": "zstd"})
    assert airflow_api.wait_dag_run(MANUAL, run.dag_run_id, timeout=300).state == "success", \
        e2e_site.dag_runs_summary(MANUAL)
    note = e2e_site.wait_annotation(experiment, record.run, MANUAL)
    body = note.body or {}
    assert body["dag_run_id"] == run.dag_run_id and body["ok"] is True, note.text
    assert body["events_delivered"] == 18 and body["consumer_messages"] == 6  # 2 ranks x 3 batches of 3
    made = [t for t in e2e_site.transfers() if t.id not in before]
    assert [t.id for t in made] == [body["transfer_id"]] and made[0].options.ranks == 2


@pytest.mark.parametrize(("conf", "field", "why"), [
    ({"run": 1}, "experiment", "No value passed"),
    ({"experiment": "mfxp1001121", "run": -3}, "run", "less than the minimum of 0"),
    ({"experiment": "mfxp1001121", "run": 1, "serializer": "JSONSerializer"}, "serializer", "is not one of"),
    ({"experiment": "bad name!", "run": 1}, "experiment", "does not match"),
    ({"experiment": "mfxp1001121", "run": 1, "batch_size": 0}, "batch_size", "less than the minimum of 1"),
])
def test_a_form_with_a_bad_field_is_refused_naming_it(airflow_api: AirflowClient, conf: dict, field: str,
                                                      why: str) -> None:
    before = len(airflow_api.dag_runs(MANUAL))
    with pytest.raises(AirflowError) as refused:
        airflow_api.trigger(MANUAL, conf=conf)
    assert refused.value.status == 400
    assert f"param {field}" in str(refused.value) and why in str(refused.value)
    assert len(airflow_api.dag_runs(MANUAL)) == before  # nothing started


def test_a_run_the_elog_does_not_know_fails_before_anything_starts(e2e_site: Site, airflow_api: AirflowClient,
                                                                   experiment: str) -> None:
    before = {t.id for t in e2e_site.transfers()}
    run = airflow_api.trigger(MANUAL, conf={"experiment": experiment, "run": 7})
    assert airflow_api.wait_dag_run(MANUAL, run.dag_run_id, timeout=300).state == "failed"
    assert f"run {experiment}/7 is not in the ELog" in e2e_site.task_log(MANUAL, run.dag_run_id, "runs")
    assert {t.id for t in e2e_site.transfers()} == before


def test_a_failing_consumer_fails_the_dag_run_cancels_the_transfer_and_says_so(
        e2e_site: Site, airflow_api: AirflowClient, experiment: str) -> None:
    record = e2e_site.take_run(experiment, "--events", "200", "--rate", "100", "--no-kafka")
    command = "echo 'cannot write to /scratch/e2e: read-only file system' >&2; exit 3"
    run = airflow_api.trigger(MANUAL, conf={"experiment": experiment, "run": record.run, "batch_size": 1,
                                            "consumer_command": command})
    assert airflow_api.wait_dag_run(MANUAL, run.dag_run_id, timeout=300).state == "failed"

    note = e2e_site.wait_annotation(experiment, record.run, MANUAL)
    body = note.body or {}
    assert body["ok"] is False and body["consumer_state"] == "failed"
    assert body["transfer_state"] == "canceled"
    assert "exit code 3: cannot write to /scratch/e2e: read-only file system" in note.text
    assert f"transfer {body['transfer_id']} canceled" in note.text
    verdict = e2e_site.task_log(MANUAL, run.dag_run_id, "stream.verdict", map_index=0)
    assert "exit code 3: cannot write to /scratch/e2e: read-only file system" in verdict
    (task,) = [t for t in airflow_api.task_instances(MANUAL, run.dag_run_id) if t.task_id == "stream.consumer"]
    assert task.state == "failed"
