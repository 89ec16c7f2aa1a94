"""The Kafka side of :class:`~airflow_provider_lclstream.triggers.run_events.RunEventTrigger`.

:class:`RunEventStream` is Airflow 3.3's shared-stream producer (ack mode) for one topic, connection
and consumer group: one kafka-python consumer (on its own thread, see ``kafka_thread``) serves every
trigger that watches that topic, each message is decoded once into the run-event model, and offsets
are committed only after every subscribed trigger has moved past the message and the trigger events
it made were persisted by Airflow. A message that was not acknowledged (ack timeout, or no
subscriber) holds its partition's commit and is read again. Malformed, non-JSON, tombstone and
unknown-kind messages are logged with their partition and offset, skipped, and committed past.

With ``since`` (a sensor waiting for one event), the stream reads every partition from that time on
without a consumer group and commits nothing: a restart simply reads again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import NamedTuple

from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer
from kafka import KafkaConsumer, TopicPartition

from airflow_provider_lclstream.hooks.run_events import KafkaSettings, RunEventsHook
from airflow_provider_lclstream.triggers.kafka_thread import ConsumerThread
from elog.events import RunEvent, RunEventError, parse_run_event

log = logging.getLogger(__name__)


class KafkaPosition(NamedTuple):
    """Where a message was read: what an advance commits or seeks back to."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class RunEventRecord:
    """One message of the run-events topic as the triggers see it; ``event`` None: not a run event."""

    position: KafkaPosition
    event: RunEvent | None


def decode(record: object) -> RunEventRecord:
    """The run event a kafka-python record carries; anything else is logged (where, why) and skipped."""
    position = KafkaPosition(record.topic, record.partition, record.offset)  # type: ignore[attr-defined]
    where = f"{position.topic}[{position.partition}] offset {position.offset}"
    try:
        event = parse_run_event(record.value)  # type: ignore[attr-defined]
    except RunEventError as exc:
        log.warning("run events: skipped the message at %s: %s", where, exc)
        return RunEventRecord(position, None)
    if event is None:
        log.debug("run events: the message at %s is not a run start or stop (skipped)", where)
    return RunEventRecord(position, event)


def open_consumer(settings: KafkaSettings, topic: str, group_id: str | None, since: datetime | None) -> KafkaConsumer:
    """Subscribe in ``group_id``; or, with ``since``, assign every partition and seek to that time."""
    if since is None:
        return settings.consumer(topic=topic, group_id=group_id, enable_auto_commit=False)
    consumer = settings.consumer(group_id=None, enable_auto_commit=False)
    try:
        partitions = sorted(consumer.partitions_for_topic(topic))
        if not partitions:
            raise LookupError(f"topic {topic!r} does not exist yet")
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        found = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
        for tp in tps:
            if found.get(tp) is None:
                consumer.seek_to_end(tp)  # nothing at or after ``since`` yet
            else:
                consumer.seek(tp, found[tp].offset)
    except BaseException:
        consumer.close(autocommit=False)
        raise
    return consumer


def find_event(settings: KafkaSettings, topic: str, since: datetime, matches: Callable[[RunEvent], bool],
               timeout: float = 60.0) -> RunEventRecord | None:
    """The first matching run event published since ``since``, reading every partition to its current
    end; None when there is none (yet). Blocking: a sensor's poke."""
    try:
        consumer = open_consumer(settings, topic, None, since)
    except LookupError:
        return None  # no such topic yet
    try:
        ends = consumer.end_offsets(list(consumer.assignment()))
        deadline = time.monotonic() + timeout
        while not all(consumer.position(tp) >= end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading run events from {since.isoformat()} took more than {timeout:g} s")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    found = decode(record)
                    if found.event is not None and matches(found.event):
                        return found
        return None
    finally:
        consumer.close(autocommit=False)


class AdvancePlan(NamedTuple):
    """What to do for one partition: commit up to ``commit`` (the next offset to read), keep ``floor``
    (the earliest offset held for re-reading) and, when set, re-read from ``seek``."""

    commit: int | None
    floor: int | None
    seek: int | None


def plan_advance(batch: Sequence[AdvanceItem], floor: int | None) -> AdvancePlan:
    """Decide a partition's commit from one batch of resolved messages (in offset order).

    A message counts as taken when a subscriber acknowledged it (its trigger events were persisted, or
    it matched no trigger) or rejected it, and none failed. The first message not taken (an ack
    timeout, or a broadcast nobody was subscribed to) is held: commits stop below it and the partition
    is read again from there. The hold (``floor``) outlives the batch and lifts only once a batch that
    starts at or before it takes the held message.
    """
    commit: int | None = None
    held: int | None = None
    for item in batch:
        outcome = item.outcome
        if outcome.failed or not (outcome.acked or outcome.rejected):
            held = item.broker_payload.offset
            break
        commit = item.broker_payload.offset + 1
    first = batch[0].broker_payload.offset
    if floor is not None and first <= floor and commit is not None and commit > floor:
        floor = None  # the held message was read again and taken
    if held is not None:
        floor = held if floor is None else min(floor, held)
    if commit is not None and floor is not None:
        commit = min(commit, floor)
    return AdvancePlan(commit, floor, floor if held is not None else None)


class RunEventStream(SharedStreamProducer):
    """One consumer of one run-events topic; see the module docstring.

    :param kafka_conn_id: the ``lclstream_kafka`` connection.
    :param topic: the topic (None: the connection's).
    :param group_id: the consumer group (None: the connection's); unused with ``since``.
    :param since: read from this time on without a group, committing nothing.
    """

    def __init__(self, kafka_conn_id: str, topic: str | None = None, group_id: str | None = None,
                 since: datetime | None = None) -> None:
        self.kafka_conn_id = kafka_conn_id
        self.topic = topic
        self.group_id = group_id
        self.since = since
        self.thread: ConsumerThread | None = None
        self._floors: dict[TopicPartition, int] = {}  # per partition: the earliest offset held for re-reading

    async def open_stream(self) -> AsyncIterator[tuple[RunEventRecord, KafkaPosition]]:
        settings = await RunEventsHook(self.kafka_conn_id).asettings()
        topic = self.topic or settings.topic
        group = None if self.since is not None else self.group_id or settings.group_id
        describe = f"topic {topic}, " + (f"group {group}" if group else f"since {self.since:%Y-%m-%dT%H:%M:%S%z}")
        self.thread = ConsumerThread(partial(open_consumer, settings, topic, group, self.since), describe)
        self.thread.start()
        while True:
            record = decode(await self.thread.get())
            yield record, record.position

    def get_advance_lane(self, broker_payload: KafkaPosition) -> Hashable:
        return broker_payload.topic, broker_payload.partition  # commits are cumulative per partition

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Commit what every subscriber took; hold and re-read what one did not (see :func:`plan_advance`)."""
        if self.thread is None or self.since is not None:
            return
        first: KafkaPosition = batch[0].broker_payload
        tp = TopicPartition(first.topic, first.partition)
        plan = plan_advance(batch, self._floors.get(tp))
        if plan.floor is None:
            self._floors.pop(tp, None)
        else:
            self._floors[tp] = plan.floor
        if plan.commit is not None:
            self.thread.commit({tp: plan.commit})
        if plan.seek is not None:
            self.thread.seek(tp, plan.seek)

    async def aclose(self) -> None:
        if self.thread is not None:
            await self.thread.stop()
            self.thread = None
