"""``RunEventSensor``: wait for a run event on Kafka, by default the stop of this DAG run's run.

It reads the run-events topic from a point in time (``since``: by default shortly before the run
started, when the DAG run was triggered by its run_start; else ``lookback`` before the task starts),
so a run that already stopped before the sensor started is found too. Deferrable by default (a
``RunEventTrigger`` with ``since``, no consumer group, nothing committed); with ``deferrable=False``
each poke reads from ``since`` to the topic's current end. The return value (XCom) is the run event
as a dict with its ``key``.

    RunEventSensor(task_id="run_stopped")                          # this DAG run's run, run_stop
    RunEventSensor(task_id="any_mfx_start", kinds=["run_start"], instrument="MFX", experiment="mfx*")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_lclstream.arguments import (
    ArgumentError,
    check_model,
    default_deferrable,
    task_name,
    unset,
)
from airflow_provider_lclstream.hooks.run_events import RunEventsHook
from airflow_provider_lclstream.run_event_context import (
    RunEventArgumentError,
    RunEventTemplating,
    context_run_event,
    event_payload,
)
from airflow_provider_lclstream.triggers.run_event_stream import find_event
from airflow_provider_lclstream.triggers.run_events import RunEventTrigger, parse_since
from elog.events import RunEventFilter

EARLY = timedelta(minutes=1)  # a run's events are read from a little before its start (clock skew)


class RunEventSensor(RunEventTemplating, BaseSensorOperator):
    """Wait until a matching run event was published.

    :param experiment: the experiment (or an ``fnmatch`` pattern); default: this DAG run's run event's.
    :param run: the run number; default: this DAG run's run event's (when ``experiment`` is not given).
    :param kinds: which events (default ``["run_stop"]``).
    :param instrument: only this instrument.
    :param since: ISO 8601 time to read from; default: the run's start less a minute, else ``lookback``
        before now.
    :param lookback: how far back to read when nothing says where the run began (default 1 day).
    :param kafka_conn_id: the ``lclstream_kafka`` connection.
    :param topic: the topic (default: the connection's).
    :param run_event: the run (default: the run event that triggered the DAG run).
    :param deferrable: wait in the triggerer (default, unless ``[operators] default_deferrable`` says no).
    """

    template_fields: Sequence[str] = ("experiment", "run", "instrument", "since", "run_event")
    ui_color = "#ece4f3"

    def __init__(self, *, experiment: str | None = None, run: int | str | None = None,
                 kinds: Sequence[str] = ("run_stop",), instrument: str | None = None, since: str | None = None,
                 lookback: timedelta = timedelta(days=1), kafka_conn_id: str = RunEventsHook.default_conn_name,
                 topic: str | None = None, run_event: dict[str, Any] | str | None = None,
                 deferrable: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        name = task_name(self)
        check_model(RunEventFilter, {"kinds": list(kinds), "instrument": instrument}, "", name)
        self.experiment = experiment
        self.run = run
        self.kinds = list(kinds)
        self.instrument = instrument
        self.since = since
        self.lookback = lookback
        self.kafka_conn_id = kafka_conn_id
        self.topic = topic
        self.run_event = run_event
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def _trigger(self, context: Any) -> RunEventTrigger:
        """The filter of this task, with the run and the start point filled in from the context."""
        try:
            event = context_run_event(context, self.run_event)
        except RunEventArgumentError:
            if self.experiment is None:
                raise  # which run to wait for is ambiguous
            event = None  # the run is named; ``since`` falls back to ``lookback``
        experiment, run = self.experiment, self.run
        if experiment is None and event is not None:
            experiment, run = event.experiment, event.run if unset(run) else run
        if unset(run):
            run = None
        try:
            number = None if run is None else int(run)
        except (TypeError, ValueError):
            raise ArgumentError(f"{task_name(self)}: run: a run number, got {run!r}") from None
        since = self.since
        if since is None:
            start = (event.begin_time or event.time) if event is not None else None
            since = (start - EARLY if start else datetime.now(UTC) - self.lookback).isoformat()
        try:
            return RunEventTrigger(kafka_conn_id=self.kafka_conn_id, kinds=self.kinds, instrument=self.instrument,
                                   experiment=experiment, run=number, topic=self.topic, since=since)
        except ValueError as exc:
            raise ArgumentError(f"{task_name(self)}: {exc}") from None

    def poke(self, context: Any) -> PokeReturnValue:
        trigger = self._trigger(context)
        settings = RunEventsHook(self.kafka_conn_id).settings()
        since = parse_since(trigger.since)
        assert since is not None
        found = find_event(settings, self.topic or settings.topic, since, trigger.matches)
        if found is None or found.event is None:
            self.log.info("no matching run event since %s yet (%s)", trigger.since, self._wanted(trigger))
            return PokeReturnValue(is_done=False)
        self.log.info("run event %s %s found", found.event.type, found.event.key)
        return PokeReturnValue(is_done=True, xcom_value=event_payload(found.event))

    @staticmethod
    def _wanted(trigger: RunEventTrigger) -> str:
        what = [", ".join(trigger.kinds), trigger.experiment or "", f"run {trigger.run_number}"
                if trigger.run_number is not None else "", trigger.instrument or ""]
        return " ".join(w for w in what if w)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        trigger = self._trigger(context)
        self.log.info("waiting for %s (reading from %s)", self._wanted(trigger), trigger.since)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        self.log.info("run event %s %s", event.get("type"), event.get("key"))
        return event
