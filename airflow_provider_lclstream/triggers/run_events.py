"""``RunEventTrigger``: a run started or stopped at the facility (Kafka) -> one ``TriggerEvent``.

It reads both wire forms of ``elog.events`` (this project's run_start / run_stop, and LCLS's eLog
``Create`` / ``Update`` on its ``runs`` topic) and fires once per event that matches its filter (kinds,
instrument, experiment pattern, run number). The payload is the run event as JSON plus its ``key``
(``experiment/run``, the idempotency key downstream). Use it behind an ``AssetWatcher``::

    from airflow.sdk import Asset, AssetWatcher
    runs = Asset("mfx_runs", watchers=[AssetWatcher(
        name="mfx_run_starts", trigger=RunEventTrigger(kinds=["run_start"], instrument="MFX"))])

In the triggerer it runs on Airflow 3.3's shared-stream API in ack mode (``RunEventStream``): every
trigger on the same connection, topic and consumer group shares one consumer, and an offset is
committed only after the events made from it were persisted, so a triggerer restart re-delivers a
run rather than dropping it (the idempotency key makes the re-delivery start no second transfer).
Run on its own (``run()``: ``dag.test()``, a deferred sensor) it commits each message once its event
was handed to Airflow. With ``since`` it reads from that time on with no consumer group and commits
nothing (``RunEventSensor``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Sequence
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

from airflow_provider_lclstream.arguments import check_model
from airflow_provider_lclstream.hooks.run_events import RunEventsHook
from airflow_provider_lclstream.run_event_context import event_payload
from airflow_provider_lclstream.triggers.run_event_stream import RunEventRecord, RunEventStream
from elog.events import RunEvent, RunEventFilter

CLASSPATH = "airflow_provider_lclstream.triggers.run_events.RunEventTrigger"
SHARED_STREAM = "lclstream-run-events"


def parse_since(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        moment = datetime.fromisoformat(since)
    except (TypeError, ValueError):
        raise ValueError(f"RunEventTrigger: since: {since!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise ValueError(f"RunEventTrigger: since: {since!r} needs a time zone (e.g. +00:00)")
    return moment


class RunEventTrigger(BaseEventTrigger):
    """Fires one ``TriggerEvent`` per run event on Kafka that matches the filter.

    :param kafka_conn_id: the ``lclstream_kafka`` connection (bootstrap servers, security, topic, group).
    :param kinds: which events: ``run_start``, ``run_stop`` (default both).
    :param instrument: only this instrument (case-insensitive), e.g. ``MFX``.
    :param experiment: only experiments matching this pattern (``fnmatch``, e.g. ``mfx*``).
    :param run: only this run number (with ``experiment``: one run).
    :param topic: the topic (default: the connection's, ``runs`` unless it says otherwise).
    :param group_id: the consumer group (default: the connection's); triggers that share connection,
        topic and group share one consumer.
    :param since: ISO 8601 time: read what was published since then, without a consumer group.
    """

    def __init__(self, *, kafka_conn_id: str = RunEventsHook.default_conn_name,
                 kinds: Sequence[str] = ("run_start", "run_stop"), instrument: str | None = None,
                 experiment: str | None = None, run: int | None = None, topic: str | None = None,
                 group_id: str | None = None, since: str | None = None) -> None:
        super().__init__()
        self.kafka_conn_id = kafka_conn_id
        self.kinds = list(kinds)
        self.instrument = instrument
        self.experiment = experiment
        self.run_number = run
        self.topic = topic
        self.group_id = group_id
        self.since = since
        self.filter = check_model(RunEventFilter, {"kinds": self.kinds, "instrument": instrument,
                                                   "experiment": experiment, "run": run}, "", "RunEventTrigger")
        self._since = parse_since(since)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"kafka_conn_id": self.kafka_conn_id, "kinds": self.kinds, "instrument": self.instrument,
                           "experiment": self.experiment, "run": self.run_number, "topic": self.topic,
                           "group_id": self.group_id, "since": self.since}

    def matches(self, event: RunEvent | None) -> bool:
        return event is not None and self.filter.matches(event)

    def _event(self, record: RunEventRecord) -> TriggerEvent | None:
        event = record.event
        if event is None or not self.filter.matches(event):
            return None
        self.log.info("run event %s %s (%s) at %s[%d] offset %d", event.type, event.key, event.instrument,
                      *record.position)
        return TriggerEvent(event_payload(event))

    # ---- shared stream (the triggerer) -----------------------------------------------------------
    def shared_stream_key(self) -> Hashable | None:
        if self.since is not None:
            return None  # a private read from a point in time, not a consumer group
        return SHARED_STREAM, self.kafka_conn_id, self.topic, self.group_id

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> RunEventStream:
        return RunEventStream(kwargs["kafka_conn_id"], kwargs.get("topic"), kwargs.get("group_id"))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for record in shared_stream:
            if (event := self._event(record)) is not None:
                yield event

    # ---- on its own (dag.test, a deferred sensor, tests) ----------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        stream = RunEventStream(self.kafka_conn_id, self.topic, self.group_id, self._since)
        try:
            async for record, position in stream.open_stream():
                if (event := self._event(record)) is not None:
                    yield event  # resumed once Airflow has taken the event
                await stream.advance([AdvanceItem(position, AdvanceOutcome(acked=1, failed=0))])
        finally:
            await stream.aclose()
