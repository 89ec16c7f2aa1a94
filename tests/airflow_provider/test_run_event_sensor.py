"""RunEventSensor and RunEventsHook against a real Kafka broker: a run that already stopped is found,
another run's stop is not; the deferred wait (a trigger reading from ``since``) and the poke agree;
the connection's Test button says whether broker and topic are reachable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_lclstream.hooks.run_events import RunEventsHook
from airflow_provider_lclstream.sensors.run_event import RunEventSensor
from airflow_provider_lclstream.triggers.run_events import event_payload
from elog.broker import free_port
from elog.events import RunEvent
from tests.airflow_provider.conftest import KafkaTopic, set_connection
from tests.airflow_provider.test_run_event_trigger import produce, run

WAIT = 90.0


def stopped(experiment: str, number: int) -> RunEvent:
    event = run(experiment, number, "run_stop")
    return event.model_copy(update={"time": datetime.now(UTC), "begin_time": datetime.now(UTC) - timedelta(seconds=30)})


def test_finds_a_stop_published_before_it_started(kafka_conn: KafkaTopic) -> None:
    start = run("mfxp1001121", 3).model_copy(update={"time": datetime.now(UTC) - timedelta(seconds=30)})
    produce(kafka_conn.bootstrap, kafka_conn.topic, stopped("mfxp1001121", 2).to_json(),
            stopped("mfxp1001121", 3).to_json("elog"))
    sensor = RunEventSensor(task_id="stopped", kafka_conn_id=kafka_conn.conn_id, run_event=event_payload(start))
    context: dict[str, Any] = {}
    poked = sensor.poke(context)
    assert poked.is_done and poked.xcom_value["key"] == "mfxp1001121/3" and poked.xcom_value["type"] == "run_stop"

    trigger = sensor._trigger(context)  # what execute() defers to
    assert trigger.since is not None and trigger.shared_stream_key() is None

    async def deferred() -> dict[str, Any]:
        events = trigger.run()
        try:
            return (await asyncio.wait_for(anext(events), WAIT)).payload
        finally:
            await events.aclose()

    assert asyncio.run(deferred())["key"] == "mfxp1001121/3"


def test_waits_for_a_later_stop_and_ignores_other_runs(kafka_conn: KafkaTopic) -> None:
    produce(kafka_conn.bootstrap, kafka_conn.topic, stopped("mfxp1001121", 4).to_json())
    sensor = RunEventSensor(task_id="stopped", kafka_conn_id=kafka_conn.conn_id, experiment="mfxp1001121", run="5",
                            since=(datetime.now(UTC) - timedelta(minutes=5)).isoformat())
    assert sensor.poke({}).is_done is False

    async def deferred() -> dict[str, Any]:
        events = sensor._trigger({}).run()
        try:
            waiting = asyncio.ensure_future(anext(events))
            await asyncio.sleep(2.0)
            assert not waiting.done()  # run 4's stop is not run 5's
            await asyncio.to_thread(produce, kafka_conn.bootstrap, kafka_conn.topic, stopped("mfxp1001121", 5).to_json())
            return (await asyncio.wait_for(waiting, WAIT)).payload
        finally:
            await events.aclose()

    payload = asyncio.run(deferred())
    assert payload["key"] == "mfxp1001121/5"
    assert sensor.poke({}).is_done


def test_connection_test_button(kafka_conn: KafkaTopic, monkeypatch: pytest.MonkeyPatch) -> None:
    produce(kafka_conn.bootstrap, kafka_conn.topic, b"hello")
    ok, message = RunEventsHook(kafka_conn.conn_id).test_connection()
    assert ok and message == f"topic {kafka_conn.topic!r}: 1 partitions [0]"
    missing = set_connection(monkeypatch, "kafka_missing", "lclstream_kafka", host=kafka_conn.bootstrap,
                             extra={"topic": "no-such-topic-here"})
    ok, message = RunEventsHook(missing).test_connection()
    assert not ok and "does not exist" in message
    dead = set_connection(monkeypatch, "kafka_dead", "lclstream_kafka", host=f"127.0.0.1:{free_port()}")
    ok, message = RunEventsHook(dead).test_connection()
    assert not ok and "not reachable" in message
