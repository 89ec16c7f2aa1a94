"""RunEventTrigger against a real Kafka broker: delivery, skipping bad messages, no run lost before the
commit, a broker restart, LCLS's eLog messages, and the shared stream in ack mode (driven by
Airflow's own SharedStreamManager, as the triggerer drives it)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent
from airflow.triggers.shared_stream import SharedStreamManager
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from airflow_provider_lclstream.triggers.run_events import RunEventTrigger
from elog.broker import KafkaBroker, KafkaBrokerSettings
from elog.events import RunEvent
from tests.airflow_provider.conftest import KafkaTopic, set_connection

WAIT = 90.0  # generous: the machine is shared; nothing here is a timing assertion
STAMP = datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC)


def run(experiment: str, number: int, kind: str = "run_start", instrument: str = "MFX") -> RunEvent:
    return RunEvent(type=kind, instrument=instrument, experiment=experiment, run=number, time=STAMP,  # type: ignore[arg-type]
                    detectors=["jungfrau4M"], run_dir=f"/data/{experiment}/r{number:04d}")


def produce(bootstrap: str, topic: str, *values: bytes | None) -> list[int]:
    """Send the values (None: a tombstone) and return their offsets."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=60000)
    try:
        return [producer.send(topic, value, key=b"exp").get(timeout=60).offset for value in values]
    finally:
        producer.close(timeout=10)


def committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, 0))
    finally:
        consumer.close(autocommit=False)


async def next_event(events: AsyncIterator[TriggerEvent], timeout: float = WAIT) -> dict[str, Any]:
    return (await asyncio.wait_for(anext(events), timeout)).payload


async def nothing_within(events: AsyncIterator[TriggerEvent], seconds: float) -> bool:
    try:
        await asyncio.wait_for(anext(events), seconds)
    except TimeoutError:
        return True
    return False


def test_delivers_a_run_start_and_skips_bad_messages(kafka_conn: KafkaTopic, caplog: pytest.LogCaptureFixture) -> None:
    good = run("mfxp1001121", 12)
    offsets = produce(kafka_conn.bootstrap, kafka_conn.topic, b"not json", None, b'{"type": "run_pause"}',
                      b'{"type": "run_start", "experiment": "x"}', good.to_json())

    async def scenario() -> dict[str, Any]:
        events = RunEventTrigger(kafka_conn_id=kafka_conn.conn_id).run()
        try:
            return await next_event(events)
        finally:
            await events.aclose()

    with caplog.at_level(logging.INFO):
        payload = asyncio.run(scenario())
    assert payload == {**good.model_dump(mode="json"), "key": "mfxp1001121/12"}
    skipped = [r.getMessage() for r in caplog.records if "skipped the message" in r.getMessage()]
    assert len(skipped) == 4
    for offset, why in zip(offsets[:4], ("not JSON", "tombstone", "type: must be one of", "instrument"), strict=True):
        assert any(f"{kafka_conn.topic}[0] offset {offset}: " in line and why in line for line in skipped), skipped


def test_a_run_handed_out_but_not_committed_is_delivered_again(kafka_conn: KafkaTopic) -> None:
    first, second = run("mfxp1001121", 1), run("mfxp1001121", 2)
    produce(kafka_conn.bootstrap, kafka_conn.topic, first.to_json())

    async def stopped_before_commit() -> dict[str, Any]:
        events = RunEventTrigger(kafka_conn_id=kafka_conn.conn_id).run()
        payload = await next_event(events)  # Airflow took it, but the trigger stops before resuming
        await events.aclose()
        return payload

    assert asyncio.run(stopped_before_commit())["key"] == "mfxp1001121/1"
    assert committed(kafka_conn.bootstrap, kafka_conn.group, kafka_conn.topic) is None

    async def restarted() -> list[str]:
        events = RunEventTrigger(kafka_conn_id=kafka_conn.conn_id).run()
        try:
            again = await next_event(events)  # the same run, re-delivered
            await asyncio.to_thread(produce, kafka_conn.bootstrap, kafka_conn.topic, second.to_json())
            after = await next_event(events)  # resuming committed the first one
            return [again["key"], after["key"]]
        finally:
            await events.aclose()

    assert asyncio.run(restarted()) == ["mfxp1001121/1", "mfxp1001121/2"]
    assert committed(kafka_conn.bootstrap, kafka_conn.group, kafka_conn.topic) == 1  # run 1 done, run 2 not yet


def test_elog_create_starts_and_a_parameter_update_fires_nothing(kafka_conn: KafkaTopic) -> None:
    start, stop = run("cxic00121", 7, instrument="CXI"), run("cxic00121", 7, "run_stop", instrument="CXI")
    stop = stop.model_copy(update={"begin_time": STAMP, "files": ["/data/r0007-s000.h5"], "event_count": 120})
    update = start.to_message("elog") | {"CRUD": "Update"}
    update["value"] = {**update["value"], "params": {"detector_distance_mm": 120}}
    assert update["value"]["end_time"] is None  # a changed run parameter, not the end of the run
    produce(kafka_conn.bootstrap, kafka_conn.topic, start.to_json("elog"), json.dumps(update).encode(),
            stop.to_json("elog"))

    async def scenario() -> list[dict[str, Any]]:
        everything = RunEventTrigger(kafka_conn_id=kafka_conn.conn_id, group_id=f"{kafka_conn.group}-all").run()
        starts = RunEventTrigger(kafka_conn_id=kafka_conn.conn_id, kinds=["run_start"], instrument="cxi",
                                 group_id=f"{kafka_conn.group}-starts").run()
        try:
            seen = [await next_event(everything), await next_event(everything), await next_event(starts)]
            assert await nothing_within(starts, 5.0)  # the parameter Update and the run_stop fire nothing here
            return seen
        finally:
            await everything.aclose()
            await starts.aclose()

    seen = asyncio.run(scenario())
    assert [(e["type"], e["key"], e["source_format"]) for e in seen] == [
        ("run_start", "cxic00121/7", "elog"), ("run_stop", "cxic00121/7", "elog"), ("run_start", "cxic00121/7", "elog")]
    assert seen[1]["files"] == ["/data/r0007-s000.h5"] and seen[1]["event_count"] == 120


def test_survives_a_broker_restart(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    broker = KafkaBroker(KafkaBrokerSettings(startup_timeout=240))
    bootstrap = broker.start()
    topic, group = f"runs-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    conn_id = set_connection(monkeypatch, "kafka_restart", "lclstream_kafka", host=bootstrap,
                             extra={"topic": topic, "group_id": group, "auto_offset_reset": "earliest"})
    try:
        produce(bootstrap, topic, run("mfxp1", 1).to_json())

        async def scenario() -> list[str]:
            events = RunEventTrigger(kafka_conn_id=conn_id).run()
            try:
                keys = [(await next_event(events))["key"]]
                await asyncio.to_thread(broker.restart)  # the broker goes away and comes back
                await asyncio.to_thread(produce, bootstrap, topic, run("mfxp1", 2).to_json())
                keys.append((await next_event(events, 180.0))["key"])
                return keys
            finally:
                await events.aclose()

        with caplog.at_level(logging.INFO, logger="airflow_provider_lclstream"):
            assert asyncio.run(scenario()) == ["mfxp1/1", "mfxp1/2"]
    finally:
        broker.stop()
    states = [r.getMessage().split(": ", 1)[1] for r in caplog.records if r.getMessage().startswith("run events (")]
    assert states.count("broker unreachable; kafka-python reconnects with backoff") == 1, states
    down = states.index("broker unreachable; kafka-python reconnects with backoff")
    assert any(s.startswith("connected") for s in states[down:]), states  # one line back up, not one per poll
    assert len(states) <= 8, states


def test_shared_stream_one_consumer_commits_only_what_airflow_persisted(kafka_conn: KafkaTopic) -> None:
    mfx, cxi = run("mfxp1001121", 3), run("cxic00121", 4, instrument="CXI")
    offsets = produce(kafka_conn.bootstrap, kafka_conn.topic, mfx.to_json(), b"garbage", cxi.to_json("elog"))
    watchers = {1: RunEventTrigger(kafka_conn_id=kafka_conn.conn_id, kinds=["run_start"], instrument="MFX"),
                2: RunEventTrigger(kafka_conn_id=kafka_conn.conn_id, kinds=["run_start"], instrument="CXI")}

    async def drive(confirm: bool) -> dict[int, list[str]]:
        """What the triggerer does: subscribe, filter, bind each event, and (maybe) confirm it persisted."""
        manager = SharedStreamManager(ack_timeout=300)
        got: dict[int, list[str]] = {1: [], 2: []}
        seqs: list[int] = []
        key = watchers[1].shared_stream_key()

        async def subscriber(trigger_id: int) -> None:
            trigger = watchers[trigger_id]
            stream = manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
            async for event in trigger.filter_shared_stream(stream):
                seq = manager.bind_pending_event(trigger_id=trigger_id, key=key)
                assert seq is not None  # ack mode: the event is bound to its Kafka message
                seqs.append(seq)
                got[trigger_id].append(event.payload["key"])

        tasks = {tid: asyncio.create_task(subscriber(tid)) for tid in watchers}
        deadline = asyncio.get_running_loop().time() + WAIT
        while (not got[1] or not got[2]) and asyncio.get_running_loop().time() < deadline:
            for task in tasks.values():
                if task.done():
                    task.result()  # a subscriber that ended early: show why
            await asyncio.sleep(0.1)
        consumers = [t.name for t in threading.enumerate() if t.name.startswith("lclstream-kafka[")]
        assert len(consumers) == 1, consumers  # one consumer for both watchers
        assert committed(kafka_conn.bootstrap, kafka_conn.group, kafka_conn.topic) is None
        if confirm:
            manager.confirm_persisted(seqs)
        for tid, task in tasks.items():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await manager.unsubscribe(tid, key)
        return got

    assert asyncio.run(drive(confirm=False)) == {1: ["mfxp1001121/3"], 2: ["cxic00121/4"]}
    assert committed(kafka_conn.bootstrap, kafka_conn.group, kafka_conn.topic) is None  # never persisted
    assert asyncio.run(drive(confirm=True)) == {1: ["mfxp1001121/3"], 2: ["cxic00121/4"]}  # delivered again
    assert committed(kafka_conn.bootstrap, kafka_conn.group, kafka_conn.topic) == offsets[-1] + 1
