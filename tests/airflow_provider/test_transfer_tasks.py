"""LCLStreamTransferOperator, TransferTrigger and BufferSensor against a real LCLStream-API (local Psi-k
jobs, nng-stream, lclstreamer) with real consumers (``lclstream pull``) on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_lclstream.hooks.lclstream import LCLStreamHook
from airflow_provider_lclstream.sensors.buffer import BufferSensor
from airflow_provider_lclstream.triggers.run_events import event_payload
from airflow_provider_lclstream.triggers.transfer import TransferTrigger
from buffer.client import messages
from elog.events import RunEvent
from lclstream_api.models import TransferView
from lclstream_api.transport import open_transfer
from tests.airflow_provider.conftest import AIRFLOW_HOME, dag_file
from tests.lclstream_api.harness import VENV_BIN, Service, env_with_venv, synthetic_config, wait_for

WAIT = 180.0
START = datetime(2026, 1, 1, tzinfo=UTC)


def pull(service: Service, transfer_id: str, out: Path) -> subprocess.Popen[bytes]:
    """``lclstream pull ID`` as alice: her data credentials are fetched over the control plane, then she pulls."""
    return subprocess.Popen([str(VENV_BIN / "lclstream"), "pull", transfer_id, "--server", "lclstream", "--out",
                             str(out), "--wait", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env_with_venv({"CERTIFIED_CONFIG": str(service.pki.user_dir("alice"))}))


def alice_transfers(service: Service) -> list[TransferView]:
    with service.client("alice") as api:
        return api.list()


class Consumer(threading.Thread):
    """Waits for alice's next transfer to appear, then pulls it to the end."""

    def __init__(self, service: Service, out: Path) -> None:
        super().__init__(daemon=True)
        self.service, self.out = service, out
        self.known = {t.id for t in alice_transfers(service)}
        self.returncode: int | None = None
        self.stderr = ""

    def run(self) -> None:
        view = wait_for(lambda: next((t for t in alice_transfers(self.service) if t.id not in self.known), None),
                        WAIT, what="a new transfer")
        proc = pull(self.service, view.id, self.out)
        try:
            _, err = proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        self.returncode, self.stderr = proc.returncode, err.decode(errors="replace")


TRANSFER_DAG = """
    import json
    from datetime import UTC, datetime
    from airflow.sdk import DAG, task
    from airflow_provider_lclstream.operators.transfer import LCLStreamTransferOperator

    with DAG("provider_transfer", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC),
             template_searchpath=[{templates!r}]) as dag:
        transfer = LCLStreamTransferOperator(task_id="transfer", config="stream.yaml", options={{"ranks": 1}},
                                             run_event={event!r}, lclstream_conn_id={conn!r}, poll_interval=0.5)

        @task
        def record(summary, transfer_id, url):
            with open({result!r}, "w") as fh:
                json.dump({{"summary": summary, "transfer_id": transfer_id, "url": url}}, fh)

        record(transfer.output, "{{{{ ti.xcom_pull(task_ids='transfer', key='transfer_id') }}}}",
               "{{{{ ti.xcom_pull(task_ids='transfer', key='url') }}}}")
"""


def test_operator_runs_a_real_transfer_to_completion(airflow_db: Path, service: Service,
                                                     lclstream_conn: str, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    config = synthetic_config(events=24, batch=4)
    config["source_identifier"] = "exp={{ run_event.experiment }}:run={{ run_event.run }}"
    (templates / "stream.yaml").write_text(yaml.safe_dump(config))  # a Jinja template rendered with the run event
    event = RunEvent(type="run_start", instrument="MFX", experiment="mfxp1001121", run=12, time=START)  # type: ignore[arg-type]
    result = tmp_path / "result.json"
    dag = dag_file("provider_transfer", TRANSFER_DAG.format(templates=str(templates), event=event_payload(event),
                                                            conn=lclstream_conn, result=str(result))).dag
    consumer = Consumer(service, tmp_path / "out")
    consumer.start()
    run = dag.test()
    consumer.join(WAIT)
    assert run.state == "success", service.log_text()[-3000:]
    assert consumer.returncode == 0, consumer.stderr
    got = json.loads(result.read_text())
    summary = got["summary"]
    assert summary["transfer_id"] == got["transfer_id"] and summary["url"] == got["url"]
    assert summary["state"] == "completed" and summary["messages_delivered"] == 6 + 1  # batches + each rank's end and summary["bytes_delivered"] > 0
    assert summary["consumers"] == 1 and summary["duration_s"] > 0
    hook = LCLStreamHook(lclstream_conn)
    assert hook.status(got["transfer_id"]).state == "completed"
    # the same run event again: its idempotency key (experiment/run) names the same transfer
    rendered = config | {"source_identifier": "exp=mfxp1001121:run=12"}
    assert hook.request(rendered, {"ranks": 1}, idempotency_key="mfxp1001121/12").id == got["transfer_id"]


def test_trigger_sees_consumers_connect_and_on_kill_cancels(service: Service, lclstream_conn: str) -> None:
    hook = LCLStreamHook(lclstream_conn)
    # a long run into a small buffer: with a consumer that takes one message and holds, it streams on
    view = hook.request(synthetic_config(events=100_000, batch=4), {"ranks": 1, "max_bytes": 2**20})
    sensor = BufferSensor(task_id="consumers", transfer_id=view.id, consumers=1, lclstream_conn_id=lclstream_conn,
                          poke_interval=0.5, deferrable=False)
    assert sensor.poke({}).is_done is False

    async def scenario() -> dict[str, Any]:
        trigger = TransferTrigger(transfer_id=view.id, condition={"consumers": 1}, lclstream_conn_id=lclstream_conn,
                                  poll_interval=0.5)
        events = trigger.run()
        waiting = asyncio.ensure_future(anext(events))
        await asyncio.sleep(1.0)
        assert not waiting.done()  # no consumer yet
        with service.client("alice") as api:
            creds, context = open_transfer(view.id, api)  # alice's consumer certificate for this transfer
        stream = messages(creds.url, context=context, timeout=WAIT)
        await asyncio.to_thread(next, stream)  # connected, one message taken
        try:
            payload = (await asyncio.wait_for(waiting, WAIT)).payload
            await events.aclose()
            assert not (await asyncio.to_thread(hook.status, view.id)).state.terminal
            await trigger.on_kill()  # a user killed the deferred task: the transfer is canceled
        finally:
            stream.close()
        return payload

    payload = asyncio.run(scenario())
    assert payload["status"] == "success" and payload["summary"]["consumers"] == 1
    assert wait_for(lambda: hook.status(view.id).state == "canceled", 60, what="canceled")
    assert "canceled by alice" in hook.status(view.id).reason
    with pytest.raises(AirflowFailException, match=f"transfer {view.id} canceled"):
        sensor.poke({})  # a canceled transfer fails the sensor at once


def test_buffer_sensor_fails_at_once_when_the_transfer_fails(service: Service, lclstream_conn: str) -> None:
    hook = LCLStreamHook(lclstream_conn)
    view = hook.request(synthetic_config(events=400), {"ranks": 1})
    hook.cancel(view.id)

    async def scenario() -> dict[str, Any]:
        trigger = TransferTrigger(transfer_id=view.id, condition={"state": "completed"},
                                  lclstream_conn_id=lclstream_conn, poll_interval=0.5)
        events = trigger.run()
        try:
            return (await asyncio.wait_for(anext(events), WAIT)).payload
        finally:
            await events.aclose()

    payload = asyncio.run(scenario())
    assert payload["status"] == "error" and view.id in payload["message"] and "canceled" in payload["message"]
    sensor = BufferSensor(task_id="drained", transfer_id=view.id, drained=True, lclstream_conn_id=lclstream_conn)
    with pytest.raises(AirflowFailException, match=f"transfer {view.id} canceled"):
        sensor.poke({})


KILL_DAG = """
    from datetime import UTC, datetime
    from airflow.sdk import DAG
    from airflow_provider_lclstream.operators.transfer import LCLStreamTransferOperator

    with DAG("provider_kill", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
        LCLStreamTransferOperator(task_id="transfer", config={config!r}, options={{"ranks": 1}},
                                  lclstream_conn_id={conn!r}, deferrable=False, poll_interval=0.5)

    if __name__ == "__main__":
        print("dag run", dag.test().state, flush=True)
"""


def test_killing_the_waiting_task_cancels_its_transfer(airflow_db: Path, service: Service,
                                                      lclstream_conn: str, tmp_path: Path) -> None:
    dag_file("provider_kill", KILL_DAG.format(config=synthetic_config(events=4000), conn=lclstream_conn))
    known = {t.id for t in alice_transfers(service)}
    hook = LCLStreamHook(lclstream_conn)
    proc = subprocess.Popen([sys.executable, str(AIRFLOW_HOME / "dags" / "provider_kill.py")], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        view = wait_for(lambda: next((t for t in alice_transfers(service) if t.id not in known), None),
                        WAIT, what="the task's transfer")
        assert not hook.status(view.id).state.terminal
        proc.send_signal(signal.SIGTERM)  # what Airflow does to a task it kills: the operator's on_kill
        out, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    final = wait_for(lambda: (v := hook.status(view.id)).state.terminal and v, 60,
                     what="the transfer to end")
    assert final.state == "canceled", out[-3000:]
    assert "canceled by alice" in final.reason
    assert "canceled (the task was killed)" in out
