"""``ElogAnnotateOperator``: post an annotation (text for people, a JSON body for programs) to a run.

The run is the one this task works for (``run_event``: by default the run event that triggered the DAG
run; ``{{ run_event.experiment }}`` and friends in the templates) or the ``experiment`` and ``run``
given. ``text`` and ``body`` are templates; ``body`` may also be JSON text or an ``XComArg`` (a task's
summary, say). The ELog records the connection's identity as the author. The return value (XCom) is the
annotation: id, time, author, text, body::

    ElogAnnotateOperator(task_id="annotate", text="streamed {{ ti.xcom_pull('count') }} events to S3DF",
                         body="{{ ti.xcom_pull(task_ids='transfer') | tojson }}")
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pydantic import ValidationError

from airflow_provider_lclstream.arguments import ArgumentError, check_model, task_name, templated, unset
from airflow_provider_lclstream.hooks.elog import ElogHook
from airflow_provider_lclstream.run_event_context import RunEventTemplating, context_run_event
from airflow_provider_lclstream.triggers.polling import transient
from elog.client import ElogError
from elog.records import AnnotationIn


class ElogAnnotateOperator(RunEventTemplating, BaseOperator):
    """Annotate a run in the ELog.

    :param text: what a person reads (a template, rendered with the context and ``run_event``).
    :param body: a JSON object for programs: a dict (its strings are templates), JSON text, or an
        ``XComArg``; None for none.
    :param experiment: the run's experiment; default: the run event's.
    :param run: the run number; default: the run event's.
    :param elog_conn_id: the ``elog`` connection.
    :param run_event: the run (default: the run event that triggered the DAG run).
    """

    template_fields: Sequence[str] = ("text", "body", "experiment", "run", "run_event")
    template_fields_renderers = {"body": "json", "run_event": "json"}
    ui_color = "#f3e4e4"

    def __init__(self, *, text: str, body: dict[str, Any] | str | None = None, experiment: str | None = None,
                 run: int | str | None = None, elog_conn_id: str = ElogHook.default_conn_name,
                 run_event: dict[str, Any] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        name = task_name(self)
        if not isinstance(text, str) and not templated(text):
            raise ArgumentError(f"{name}: text: a (templated) string, got {type(text).__name__}")
        if body is not None and not isinstance(body, dict | str) and not templated(body):
            raise ArgumentError(f"{name}: body: a dict, JSON text or an XComArg, got {type(body).__name__}")
        if isinstance(text, str) and isinstance(body, dict | None) and not templated([text, body]):
            check_model(AnnotationIn, {"text": text, "body": body}, "", name)
        self.text = text
        self.body = body
        self.experiment = experiment
        self.run = run
        self.elog_conn_id = elog_conn_id
        self.run_event = run_event

    def _target(self, context: Any) -> tuple[str, int]:
        """The experiment and run to annotate: the arguments, else the run event's."""
        experiment, run = self.experiment, self.run
        if unset(experiment) or unset(run):
            event = context_run_event(context, self.run_event)
            if event is None:
                raise AirflowFailException(f"{task_name(self)}: no run to annotate: give experiment and run, "
                                           "or run the task for a run event")
            experiment = event.experiment if unset(experiment) else experiment
            run = event.run if unset(run) else run
        try:
            return str(experiment), int(run)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise AirflowFailException(f"{task_name(self)}: run: a run number, got {run!r}") from None

    def _note(self) -> AnnotationIn:
        body = self.body
        if isinstance(body, str):
            try:
                body = json.loads(body) if body.strip() else None
            except ValueError as exc:
                raise AirflowFailException(f"{task_name(self)}: body: not JSON once rendered: {exc}") from None
        try:
            return AnnotationIn(text=self.text, body=body)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise AirflowFailException(f"{task_name(self)}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None

    def execute(self, context: Any) -> dict[str, Any]:
        experiment, run = self._target(context)
        note = self._note()
        hook = ElogHook(self.elog_conn_id)
        try:
            annotation = hook.annotate(experiment, run, note.text, note.body)
        except ElogError as exc:
            if transient(exc):
                raise AirflowException(f"the ELog could not take the annotation of {experiment}/{run} now: {exc}") from None
            raise AirflowFailException(f"the ELog refused the annotation of {experiment}/{run}: {exc}") from None
        finally:
            hook.close()
        self.log.info("annotated run %s/%d (annotation %d by %s): %s", experiment, run, annotation.id,
                      annotation.author, note.text.splitlines()[0] if note.text else "")
        return annotation.model_dump(mode="json")
