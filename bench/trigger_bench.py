"""RunEventTrigger benchmark: run_start produced on Kafka -> TriggerEvent, and how long it blocks the loop.

    python bench/trigger_bench.py [--events 20] [--interval 0.25]

A real Kafka broker (``elog.broker``, or ``$LCLSTREAM_KAFKA_BOOTSTRAP``) and a private Airflow home.
``--events`` run_start messages are produced one at a time, ``--interval`` seconds apart, each carrying
its send time; the latency is from the producer's send to the trigger yielding its TriggerEvent, in
one process (one clock). Two paths, side by side:

1. ``run()``: the trigger on its own (``dag.test()``, a deferred task).
2. shared stream: Airflow's ``SharedStreamManager`` in ack mode, as the triggerer runs an
   AssetWatcher's trigger (one consumer, commits after the events are confirmed persisted).

Loop blocking: asyncio's debug mode reports every task step longer than 2 ms once the runs start
(start-up, the group join, is left out); the longest step of the trigger's and the shared stream's
tasks (and what ran it) is printed, with a 1 ms ticker's worst lateness as a cross-check (an upper
bound that includes the time the process waited for a CPU or for the GIL held by kafka-python's
threads; on a loaded machine debug-mode step times include such waits too). The producer is a
separate process.
Targets: p50 <= 100 ms; no step longer than 10 ms.
Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="trigger-bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from elog.broker import KafkaBroker, KafkaBrokerSettings  # noqa: E402

STEP = re.compile(r"Executing (?P<what>.+) took (?P<seconds>[0-9.]+) seconds")


class SlowSteps(logging.Handler):
    """Collects asyncio debug mode's 'Executing <task step> took N seconds' warnings."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = STEP.search(record.getMessage())
        if match:
            self.steps.append((float(match["seconds"]), match["what"][:110]))


PRODUCER = """
import sys, time
from datetime import UTC, datetime
from kafka import KafkaProducer
from elog.events import RunEvent
bootstrap, topic, events, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, max_block_ms=60000)
producer.send(topic, b"warm-up").get(60)  # connected before the first run starts
print("ready", flush=True)
sys.stdin.readline()
for i in range(events):
    event = RunEvent(type="run_start", instrument="MFX", experiment="mfxbench", run=i,
                     time=datetime.now(UTC), params={"sent": time.time()})
    producer.send(topic, event.to_json(), key=event.kafka_key())
    producer.flush()
    time.sleep(interval)
producer.close(timeout=10)
"""


async def ticker(stop: asyncio.Event, worst: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.001)
        worst[0] = max(worst[0], loop.time() - before - 0.001)


async def measure(bootstrap: str, conn_id: str, topic: str, events: int, interval: float, shared: bool,
                  steady: list[tuple[float, str]]) -> tuple[list[float], float]:
    from airflow.triggers.shared_stream import SharedStreamManager

    from airflow_provider_lclstream.triggers.run_events import RunEventTrigger

    trigger = RunEventTrigger(kafka_conn_id=conn_id, kinds=["run_start"], instrument="MFX")
    # the producer is another process: its work does not compete with the trigger for this one's GIL
    sender = await asyncio.create_subprocess_exec(sys.executable, "-c", PRODUCER, bootstrap, topic, str(events),
                                                  str(interval), stdin=asyncio.subprocess.PIPE,
                                                  stdout=asyncio.subprocess.PIPE)
    assert sender.stdin is not None and sender.stdout is not None
    await asyncio.wait_for(sender.stdout.readline(), 120)
    stop, worst = asyncio.Event(), [0.0]
    tick = asyncio.create_task(ticker(stop, worst))
    latencies: list[float] = []
    pending: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    manager = SharedStreamManager()
    key = trigger.shared_stream_key()
    if shared:
        stream = trigger.filter_shared_stream(manager.subscribe(trigger_id=1, trigger=trigger, key=key))
    else:
        stream = trigger.run()
    try:
        pending = asyncio.ensure_future(anext(stream))  # the consumer starts and joins its group ...
        await asyncio.sleep(3.0)  # ... before the first run starts
        steady.clear()  # start-up (connection, consumer, group join) is not the steady state
        worst[0] = 0.0
        sender.stdin.write(b"go\n")
        await sender.stdin.drain()
        deadline = time.monotonic() + 120 + events * interval
        while len(latencies) < events and time.monotonic() < deadline:
            event = await asyncio.wait_for(pending, deadline - time.monotonic())
            pending = asyncio.ensure_future(anext(stream))
            latencies.append(time.time() - event.payload["params"]["sent"])
            if shared:
                seq = manager.bind_pending_event(trigger_id=1, key=key)
                manager.confirm_persisted([seq] if seq is not None else [])
    finally:
        await sender.wait()
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await stream.aclose()
        if shared:
            await manager.unsubscribe(1, key)
        stop.set()
        await tick
    return latencies, worst[0]


def loop_cpu_per_event(samples: int = 500) -> float:
    """CPU seconds the loop spends on one run event: decode + filter + TriggerEvent + its log line."""
    from types import SimpleNamespace

    from airflow_provider_lclstream.triggers.run_event_stream import decode
    from airflow_provider_lclstream.triggers.run_events import RunEventTrigger
    from elog.events import RunEvent

    trigger = RunEventTrigger(kinds=["run_start"], instrument="MFX")
    event = RunEvent(type="run_start", instrument="MFX", experiment="mfxbench", run=1,  # type: ignore[arg-type]
                     time="2026-11-30T00:00:00Z", params={"sent": 0.0})
    record = SimpleNamespace(topic="runs", partition=0, offset=1, value=event.to_json())
    logging.getLogger("airflow_provider_lclstream").setLevel(logging.WARNING)  # not 500 lines on the terminal
    try:
        started = time.thread_time()
        for _ in range(samples):
            trigger._event(decode(record))
        return (time.thread_time() - started) / samples
    finally:
        logging.getLogger("airflow_provider_lclstream").setLevel(logging.NOTSET)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between two run_start messages")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    broker = None
    bootstrap = os.environ.get("LCLSTREAM_KAFKA_BOOTSTRAP")
    if not bootstrap:
        print("starting a Kafka broker ...", file=sys.stderr)
        broker = KafkaBroker(KafkaBrokerSettings(startup_timeout=240))
        bootstrap = broker.start()
    slow = SlowSteps()
    logging.getLogger("asyncio").addHandler(slow)
    results: dict[str, Any] = {}
    try:
        for name, shared in (("run()", False), ("shared stream (ack)", True)):
            suffix = uuid.uuid4().hex[:8]
            topic, conn_id = f"bench-runs-{suffix}", f"bench_{suffix}"
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({
                "conn_type": "lclstream_kafka", "host": bootstrap,
                "extra": {"topic": topic, "group_id": f"bench-{suffix}", "auto_offset_reset": "earliest"}})
            slow.steps.clear()

            async def run_one(conn_id: str = conn_id, topic: str = topic, shared: bool = shared) -> tuple[list[float], float]:
                loop = asyncio.get_running_loop()
                loop.set_debug(True)
                loop.slow_callback_duration = 0.002
                return await measure(bootstrap, conn_id, topic, args.events, args.interval, shared, slow.steps)

            latencies, worst_tick = asyncio.run(run_one())
            ours = [step for step in slow.steps if "ticker()" not in step[1]]  # the ticker's own stalls aside
            longest = max(ours, default=(0.0, "none over 2 ms"))
            results[name] = (latencies, worst_tick, longest, len(ours))
    finally:
        if broker is not None:
            broker.stop()
    print(f"RunEventTrigger: {args.events} run_start messages, {args.interval:g} s apart "
          f"(produced -> TriggerEvent; target p50 <= 100 ms, no loop step > 10 ms)")
    for name, (latencies, worst_tick, (step, what), count) in results.items():
        if len(latencies) < args.events:
            print(f"  {name:20s} only {len(latencies)} of {args.events} events arrived")
            continue
        ms = [v * 1000 for v in latencies]
        print(f"  {name:20s} p50 {statistics.median(ms):6.1f} ms  p95 {percentile(ms, 0.95):6.1f} ms  "
              f"max {max(ms):6.1f} ms | longest trigger/stream step {step * 1000:5.1f} ms ({count} steps > 2 ms); "
              f"worst loop stall seen by a 1 ms ticker {worst_tick * 1000:5.1f} ms")
        print(f"  {'':20s} longest step: {what}")
        print(f"  {'':20s} latencies (ms): {' '.join(f'{v:.0f}' for v in ms)}")
    print(f"  loop CPU per run event (decode, filter, TriggerEvent, log line): {loop_cpu_per_event() * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
