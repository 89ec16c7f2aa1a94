"""Finding the run event a task works for: its ``run_event`` argument, or what triggered the DAG run.

A DAG run fired by a ``RunEventTrigger`` (through an ``AssetWatcher``) carries the run event in its
triggering asset events (``extra["payload"]``). Several runs that start together reach one DAG run
as several events: then a task that works for one run must be told which (map it over
:func:`run_events`), rather than silently take one and drop the others.

    @task
    def runs(**context): return run_events(context)
    LCLStreamTransferOperator.partial(task_id="transfer", config="cfg.yaml").expand(run_event=runs())
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import StrictUndefined
from pydantic import ValidationError

from airflow_provider_lclstream.arguments import templated, unset
from elog.events import RunEvent


class RunEventArgumentError(ValueError):
    """The run event given or found is not usable; the message says why."""


def as_run_event(value: Any) -> RunEvent:
    """A RunEvent from a payload dict (with or without ``key``), a RunEvent, or its JSON text."""
    if isinstance(value, RunEvent):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise RunEventArgumentError(f"run_event: not JSON: {value[:80]!r}") from None
    if not isinstance(value, dict):
        raise RunEventArgumentError(f"run_event: expected a run event (a dict), got {type(value).__name__}")
    data = {k: v for k, v in value.items() if k != "key"}
    try:
        return RunEvent.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RunEventArgumentError(f"run_event.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def run_events(context: Any) -> list[dict[str, Any]]:
    """The run events (payload dicts, with ``key``) that triggered this DAG run, without repeats."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    events = context.get("triggering_asset_events") or {}
    for asset_events in events.values():
        for asset_event in asset_events:
            extra = getattr(asset_event, "extra", None) or {}
            payload = extra.get("payload") if isinstance(extra, dict) else None
            if isinstance(payload, dict) and payload.get("type") in ("run_start", "run_stop") and "key" in payload:
                found.setdefault((payload["type"], payload["key"]), payload)
    return list(found.values())


def event_payload(event: RunEvent) -> dict[str, Any]:
    """A run event as tasks, templates and TriggerEvents (so asset events' ``payload``) see it: its JSON
    form plus its key."""
    return {**event.model_dump(mode="json"), "key": event.key}


def context_run_event(context: Any, given: Any = None) -> RunEvent | None:
    """The run event of this task: ``given`` if set, else the one that triggered the DAG run, else None.

    Raises RunEventArgumentError when several run events triggered the DAG run and none was given.
    """
    if not unset(given):
        return as_run_event(given)
    events = run_events(context)
    if len(events) > 1:
        keys = ", ".join(f"{e['type']} {e['key']}" for e in events)
        raise RunEventArgumentError(
            f"{len(events)} run events triggered this DAG run ({keys}); pass run_event= to say which one "
            "(e.g. map the task over airflow_provider_lclstream.run_events(context))")
    return as_run_event(events[0]) if events else None


class RunEventTemplating:
    """Adds ``run_event`` to the template context before the task's fields are rendered.

    Mixed into the operators and sensors that work for one run. When several run events triggered the
    DAG run and none was given, a template that uses ``run_event`` fails with that explanation.
    """

    run_event: Any

    def _do_render_template_fields(self, parent: Any, template_fields: Any, context: Any, jinja_env: Any,
                                   seen_oids: set[int]) -> None:
        if parent is self and "run_event" not in context:
            given = self.run_event
            if templated(given):  # Jinja text, an XComArg, or a mapped task group's argument
                given = self.render_template(given, context, jinja_env, seen_oids)  # type: ignore[attr-defined]
            self.run_event = given
            try:
                event = context_run_event(context, given)
            except RunEventArgumentError as exc:  # an error only if a template of this task uses run_event
                context["run_event"] = StrictUndefined(hint=str(exc), name="run_event")
            else:
                context["run_event"] = event_payload(event) if event else None
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)  # type: ignore[misc]
