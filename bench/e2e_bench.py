"""End-to-end benchmark: a run starting at the beamline -> its first data in the consumer job at the HPC side.

    python bench/e2e_bench.py [--runs 10] [--duration 8] [--rate 20] [--shape 1,64,64]

Starts the whole local site (Kafka, the ELog, Psik-API, LCLStream-API, Airflow with the DAGs of ``dags/``),
takes one warm-up run (the first after start-up is slower), then ``--runs`` live runs one after the other
with the real DAQ, each streamed by ``lclstream_on_run_start`` into a consumer job (``lclstream pull``).
Prints, over the runs (p50, p95, max):

* run_start published -> first batch at the consumer job (target p50 <= 5 s), and its breakdown:
  Kafka -> trigger (the ``RunEventTrigger`` logs the event), trigger -> DAG run (queued), DAG run -> first
  task (``runs`` starts), first task -> transfer streaming (LCLStream-API's log: the first producer
  connected), streaming -> first batch at the consumer (its own report);
* run_stop published -> the annotation on the run in the ELog.

Times come from the parts themselves: the Kafka messages' timestamps, the triggerer's log, Airflow's DAG
run and task records, the transfer's state log, the consumer's summary line and the annotation's time.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_provider_lclstream.local_site import AirflowSettings, LocalSite, SiteSettings  # noqa: E402
from airflow_provider_lclstream.local_site.site import AIRFLOW_IDENTITY, DAQ_IDENTITY  # noqa: E402
from elog.client import ElogClient  # noqa: E402
from elog.events import parse_run_event  # noqa: E402
from lclstream_api.client import TransferClient  # noqa: E402

START, EXPERIMENT = "lclstream_on_run_start", "bench01"
TRIGGER_LINE = re.compile(r"^(\S+) .*run event (run_start|run_stop) (\S+) ")


def take_run(site: LocalSite, args: argparse.Namespace) -> dict[str, Any]:
    argv = site.daq_argv("run", "--instrument", "MFX", "--experiment", EXPERIMENT, "--detector", "jungfrau4M",
                         "--shape", args.shape, "--duration", str(args.duration), "--rate", str(args.rate),
                         "--no-progress", "--json")
    done = subprocess.run(argv, env=site.env(DAQ_IDENTITY), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the DAQ failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)["record"]


def annotation(site: LocalSite, run: int, timeout: float = 300) -> dict[str, Any]:
    assert site.pki is not None
    deadline = time.monotonic() + timeout
    with ElogClient("elog", site.pki.user_dir("alice")) as elog:
        while time.monotonic() < deadline:
            for note in elog.get(EXPERIMENT, run).annotations:
                if (note.body or {}).get("dag_id") == START:
                    return note.model_dump(mode="json")
            time.sleep(0.5)
    raise TimeoutError(f"no annotation on {EXPERIMENT}/{run} within {timeout:g} s")


def published(site: LocalSite) -> dict[tuple[str, str], float]:
    """(kind, key) -> the Kafka message timestamp (producer time) of every run event on the site's topic."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=site.kafka_bootstrap, enable_auto_commit=False, group_id=None)
    try:
        parts = [TopicPartition(site.settings.kafka_topic, p) for p in
                 consumer.partitions_for_topic(site.settings.kafka_topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        out: dict[tuple[str, str], float] = {}
        for _ in range(20):
            for records in consumer.poll(timeout_ms=1000).values():
                for rec in records:
                    event = parse_run_event(rec.value)
                    if event is not None:
                        out[(event.type.value, event.key)] = rec.timestamp / 1000
        return out
    finally:
        consumer.close()


def triggered(site: LocalSite) -> dict[tuple[str, str], float]:
    assert site.airflow is not None
    out: dict[tuple[str, str], float] = {}
    for line in (site.airflow.logs / "triggerer.log").read_text(errors="replace").splitlines():
        m = TRIGGER_LINE.match(line)
        if m:
            out.setdefault((m.group(2), m.group(3)), datetime.fromisoformat(m.group(1)).timestamp())
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name:<42} (no data)"
    return (f"  {name:<42} p50 {statistics.median(values):6.2f} s   p95 {pct(values, 0.95):6.2f} s   "
            f"max {max(values):6.2f} s   (n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds each run takes data")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--shape", default="1,64,64", help="detector shape (panels,height,width)")
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between the end of one run's stream "
                                                             "and the next run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
        settings = SiteSettings(root=Path(tmp) / "site",
                                airflow=AirflowSettings(dags_folder=ROOT / "dags", parallelism=6))
        with LocalSite(settings) as site:
            assert site.airflow is not None and site.pki is not None
            print(f"site up in {site.timings['total']:.1f} s (Airflow {site.timings['airflow']:.1f} s)")
            with site.airflow.client() as api:
                for dag in (START, "lclstream_on_run_stop", "lclstream_manual"):
                    api.wait_dag(dag, timeout=300)
            warm = take_run(site, args)
            annotation(site, warm["run"])
            print(f"warm-up run {EXPERIMENT}/{warm['run']} streamed; measuring {args.runs} runs of "
                  f"{args.duration:g} s at {args.rate:g} Hz ({args.shape} pixels)")
            rows = []
            for _ in range(args.runs):
                time.sleep(args.gap)
                record = take_run(site, args)
                note = annotation(site, record["run"])
                rows.append((record, note))
            pub, trig = published(site), triggered(site)
            with site.airflow.client() as api, \
                    TransferClient("lclstream", site.pki.user_dir(AIRFLOW_IDENTITY)) as transfers:
                report(rows, pub, trig, api, transfers)
    return 0


def report(rows: list[tuple[dict, dict]], pub: dict, trig: dict, api: Any, transfers: TransferClient) -> None:
    cols: dict[str, list[float]] = {k: [] for k in (
        "total", "kafka_trigger", "trigger_dagrun", "dagrun_task", "task_streaming", "streaming_batch",
        "consumer_task", "stop_annotation")}
    for record, note in rows:
        key, body = f"{record['experiment']}/{record['run']}", note["body"]
        if not body.get("ok"):
            print(f"  run {key} NOT streamed completely: {note['text']}")
            continue
        t_pub, t_trig = pub.get(("run_start", key)), trig.get(("run_start", key))
        dag_run = api.dag_run(START, body["dag_run_id"])
        tasks = {t.task_id: t for t in api.task_instances(START, body["dag_run_id"])}
        view = transfers.status(body["transfer_id"])
        streaming = next((t.time for t in view.log if t.state.value == "streaming"), None)
        first = body.get("first_message_at")
        if None in (t_pub, t_trig, streaming, first) or dag_run.queued_at is None:
            print(f"  run {key}: some times are missing; skipped")
            continue
        t_queued = dag_run.queued_at.timestamp()
        t_task = tasks["runs"].start_date.timestamp()  # type: ignore[union-attr]
        cols["total"].append(first - t_pub)
        cols["kafka_trigger"].append(t_trig - t_pub)
        cols["trigger_dagrun"].append(t_queued - t_trig)
        cols["dagrun_task"].append(t_task - t_queued)
        cols["task_streaming"].append(streaming - t_task)
        cols["streaming_batch"].append(first - streaming)
        consumer = tasks.get("stream.consumer")
        if consumer is not None and consumer.start_date is not None:
            cols["consumer_task"].append(consumer.start_date.timestamp() - t_task)
        t_stop = pub.get(("run_stop", key))
        if t_stop is not None:
            cols["stop_annotation"].append(datetime.fromisoformat(note["time"]).timestamp() - t_stop)
    print("run_start published -> first batch at the consumer job (target p50 <= 5 s):")
    print(line("total", cols["total"]))
    print(line("1 Kafka -> trigger (RunEventTrigger)", cols["kafka_trigger"]))
    print(line("2 trigger -> DAG run queued", cols["trigger_dagrun"]))
    print(line("3 DAG run -> first task starts", cols["dagrun_task"]))
    print(line("4 first task -> transfer streaming", cols["task_streaming"]))
    print(line("5 streaming -> first batch at the consumer", cols["streaming_batch"]))
    print(line("  (first task -> consumer task starts)", cols["consumer_task"]))
    print("run_stop published -> annotation on the run:")
    print(line("total", cols["stop_annotation"]))


if __name__ == "__main__":
    sys.exit(main())
