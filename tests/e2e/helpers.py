"""Taking runs at the e2e site and finding what the DAGs did with them.

Runs are taken by the real DAQ (``lclstream-elog run`` as the site's ``daq`` identity: the record in the
ELog, SWMR files, run events on Kafka). What happened is read back from the services, as a person would:
the run's annotations in the ELog (each names the DAG run that wrote it), the DAG run through Airflow's
REST API, the transfers through LCLStream-API, the consumer's files on disk. Every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_lclstream.local_site import AirflowClient, LocalSite
from airflow_provider_lclstream.local_site.site import AIRFLOW_IDENTITY, DAQ_IDENTITY
from elog.client import ElogClient
from elog.events import RunEvent
from elog.publisher import RunEventPublisher
from elog.records import Annotation, RunRecord
from lclstream_api.client import TransferClient
from lclstream_api.models import TransferView

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
RUN_DAGS = ("lclstream_on_run_start", "lclstream_on_run_stop", "lclstream_manual")
SMALL = ["--detector", "jungfrau4M", "--shape", "1,16,16", "--instrument", "MFX"]  # tiny frames: cheap runs
WAIT = 300.0  # seconds for anything the system does for one run, under load


@dataclass
class Site:
    site: LocalSite
    topic: str

    @property
    def api(self) -> AirflowClient:
        assert self.site.airflow is not None
        return self.site.airflow.client()

    def elog(self, user: str = "alice") -> ElogClient:
        assert self.site.pki is not None
        return ElogClient("elog", self.site.pki.user_dir(user))

    def transfers(self) -> list[TransferView]:
        """The transfers the DAGs requested (Airflow's identity owns them)."""
        assert self.site.pki is not None
        with TransferClient("lclstream", self.site.pki.user_dir(AIRFLOW_IDENTITY)) as client:
            return client.list()

    def take_run(self, experiment: str, *args: str, timeout: float = WAIT) -> RunRecord:
        """A whole run by the DAQ (``lclstream-elog run ... --json``); the closed record."""
        proc = subprocess.run(self.site.daq_argv("run", "--experiment", experiment, *SMALL, "--json", *args),
                              env=self.site.env(DAQ_IDENTITY), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"lclstream-elog run exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        return RunRecord.model_validate(json.loads(proc.stdout)["record"])

    def start_run(self, experiment: str, *args: str) -> subprocess.Popen[str]:
        """A run by the DAQ in the background; ``finish_run`` waits for it."""
        return subprocess.Popen(self.site.daq_argv("run", "--experiment", experiment, *SMALL, "--json", *args),
                                env=self.site.env(DAQ_IDENTITY), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL, start_new_session=True)

    @staticmethod
    def finish_run(proc: subprocess.Popen[str], timeout: float = WAIT) -> RunRecord:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=30)
            raise AssertionError(f"the DAQ did not finish within {timeout:g} s:\n{err[-3000:]}") from None
        assert proc.returncode == 0, f"lclstream-elog run exited {proc.returncode}:\n{err[-3000:]}"
        return RunRecord.model_validate(json.loads(out)["record"])

    def publish(self, *events: RunEvent, format: str = "lclstream") -> None:  # noqa: A002 - the CLI's word
        assert self.site.kafka_bootstrap is not None
        with RunEventPublisher(self.site.kafka_bootstrap, self.topic, format) as publisher:  # type: ignore[arg-type]
            for event in events:
                publisher.publish(event)

    def publish_raw(self, value: bytes, key: bytes = b"junk") -> None:
        """A message that is not a run event, as a misbehaving producer would send it."""
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.site.kafka_bootstrap, acks="all")
        try:
            producer.send(self.topic, key=key, value=value).get(timeout=60)
        finally:
            producer.close(timeout=30)

    def annotations(self, experiment: str, run: int) -> list[Annotation]:
        with self.elog() as elog:
            return elog.get(experiment, run).annotations

    def wait_annotation(self, experiment: str, run: int, dag_id: str, timeout: float = WAIT) -> Annotation:
        """The annotation a DAG run of ``dag_id`` posted on the run (each names its DAG run in its body)."""
        deadline = time.monotonic() + timeout
        while True:
            for note in self.annotations(experiment, run):
                if (note.body or {}).get("dag_id") == dag_id:
                    return note
            if time.monotonic() > deadline:
                seen = [n.text.splitlines()[0] for n in self.annotations(experiment, run)]
                raise AssertionError(f"no annotation by {dag_id} on {experiment}/{run} within {timeout:g} s; "
                                     f"annotations: {seen}; DAG runs: {self.dag_runs_summary(dag_id)}")
            time.sleep(1.0)

    def wait_dag_run(self, dag_id: str, run_id: str, timeout: float = WAIT) -> str:
        with self.api as api:
            return api.wait_dag_run(dag_id, run_id, timeout=timeout).state

    def dag_runs_summary(self, dag_id: str) -> str:
        with self.api as api:
            lines = []
            for run in api.dag_runs(dag_id, limit=10):
                tasks = ", ".join(f"{t.task_id}[{t.map_index}]={t.state}" for t in api.task_instances(dag_id, run.dag_run_id))
                lines.append(f"{run.dag_run_id} {run.state}: {tasks}")
            return "\n".join(lines)

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        with self.api as api:
            return api.task_log(dag_id, run_id, task_id, map_index=map_index)


def ledger(out_dir: Path) -> dict[str, Any]:
    """The consumer's ledger (``lclstream pull`` writes it next to the data)."""
    return json.loads((out_dir / "ledger.json").read_text())
