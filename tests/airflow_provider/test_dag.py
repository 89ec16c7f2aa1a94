"""A small DAG with the deferrable operators runs to success under ``dag.test()`` (triggers in-process):
request a transfer, wait until it streams, run the consumer as a Psi-k job that pulls it, wait until the
buffer drained. Real LCLStream-API, Psik-API, nng-stream and lclstreamer processes on loopback."""

from __future__ import annotations

import json
from pathlib import Path

from airflow_provider_lclstream.hooks.lclstream import LCLStreamHook
from airflow_provider_lclstream.hooks.psik import PsikHook
from tests.airflow_provider.conftest import PsikApi, dag_file
from tests.lclstream_api.harness import Service, synthetic_config

STREAM_DAG = """
    import json
    from datetime import UTC, datetime
    from airflow.sdk import DAG, task
    from airflow_provider_lclstream.operators.psik import PsikJobOperator
    from airflow_provider_lclstream.operators.transfer import LCLStreamTransferOperator
    from airflow_provider_lclstream.sensors.buffer import BufferSensor

    with DAG("provider_stream", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC),
             params={{"out": {out!r}}}) as dag:
        transfer = LCLStreamTransferOperator(task_id="transfer", config={config!r}, options={{"ranks": 2}},
                                             lclstream_conn_id={lclstream!r}, wait_for="streaming", poll_interval=0.5)
        consumer = PsikJobOperator(task_id="consumer", psik_conn_id={psik!r}, poll_interval=0.5, spec={{
            "name": "consumer", "resources": {{"duration": 5}}, "environment": {{"CERTIFIED_CONFIG": {identity!r}}},
            "script": "lclstream pull {{{{ ti.xcom_pull(task_ids='transfer', key='transfer_id') }}}} "
                      "--server lclstream --out {{{{ params.out }}}} --wait 120"}})
        drained = BufferSensor(task_id="drained", drained=True, lclstream_conn_id={lclstream!r}, poke_interval=0.5,
                               transfer_id="{{{{ ti.xcom_pull(task_ids='transfer', key='transfer_id') }}}}")

        @task
        def record(summary, job):
            with open({result!r}, "w") as fh:
                json.dump({{"summary": summary, "job": job}}, fh)

        transfer >> consumer >> drained >> record(drained.output, consumer.output)
"""


def test_stream_dag_runs_to_success(airflow_db: Path, service: Service, lclstream_conn: str,
                                    psik_api: PsikApi, psik_conn: str, tmp_path: Path) -> None:
    result, out = tmp_path / "result.json", tmp_path / "received"
    # the consumer job pulls by transfer id as alice: lclstream fetches her data credentials, then pulls
    source = STREAM_DAG.format(out=str(out), config=synthetic_config(events=40, batch=4), lclstream=lclstream_conn,
                               psik=psik_conn, result=str(result), identity=str(service.pki.user_dir("alice")))
    run = dag_file("provider_stream", source).dag.test()
    assert run.state == "success", service.log_text()[-3000:]
    got = json.loads(result.read_text())
    summary, job = got["summary"], got["job"]
    assert summary["state"] == "completed" and summary["messages_delivered"] == 10 + 2  # batches + each rank's end and summary["consumers"] == 1
    assert job["state"] == "completed" and job["exit_code"] == 0
    assert len(list(out.glob("*.h5"))) == 10  # the consumer job wrote every message it received
    assert LCLStreamHook(lclstream_conn).status(summary["transfer_id"]).state == "completed"
    assert "complete" in PsikHook(psik_conn).logs(job["jobid"], "stderr") + PsikHook(psik_conn).logs(job["jobid"])
