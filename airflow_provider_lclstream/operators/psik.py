"""``PsikJobOperator``: run any Psi-k job (a JobSpec) through Psik-API, and wait for it.

Submit on the worker, wait in a trigger: ``execute`` submits the (templated) JobSpec, pushes
``job_id`` to XCom, and then either returns the job id at once (``wait_for_completion=False``) or
waits until the job ends: in :class:`PsikJobTrigger` (the default) or on the worker
(``deferrable=False``), copying the job's new log lines into the task log as they appear. A job that
does not complete fails the task with its state, exit code and last log lines. Killing the task
cancels the job. The consumer of a transfer is such a job::

    PsikJobOperator(task_id="consumer", spec={
        "name": "consumer", "backend": "slurm", "resources": {"duration": 30},
        "script": "lclstream pull {{ ti.xcom_pull(task_ids='transfer', key='transfer_id') }} "
                  "--server lclstream --out /scratch/{{ run_event.experiment }}/r{{ run_event.run }}"})
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from airflow_provider_lclstream.arguments import (
    ArgumentError,
    check_model,
    check_positive,
    default_deferrable,
    resolved_later,
    task_name,
    templated,
    wait_here,
)
from airflow_provider_lclstream.cancel import cancel_killed
from airflow_provider_lclstream.hooks.psik import PsikHook
from airflow_provider_lclstream.run_event_context import RunEventTemplating
from airflow_provider_lclstream.triggers.psik_job import PsikJobTrigger
from psik.client import PsikAPIError
from psik.models import JobSpec


class PsikJobOperator(RunEventTemplating, BaseOperator):
    """Submit a Psi-k job and (by default) wait for it to complete.

    :param spec: the JobSpec (a dict or a ``psik.models.JobSpec``); its strings are Jinja templates,
        rendered with the context and ``run_event``.
    :param psik_conn_id: the ``psik`` connection.
    :param wait_for_completion: wait until the job ends (default); False returns the job id at once.
    :param deferrable: wait in the triggerer (default, unless ``[operators] default_deferrable`` says no).
    :param poll_interval: seconds between two looks at the job while waiting.
    :param stream_logs: copy the job's new stdout/stderr lines into the task log while waiting.
    :param cancel_on_kill: cancel the job when the task is killed (default True).
    :param run_event: the run the job is for (default: the run event that triggered the DAG run).
    """

    template_fields: Sequence[str] = ("spec", "run_event")
    template_fields_renderers = {"spec": "json", "run_event": "json"}
    ui_color = "#e4f0e8"

    def __init__(self, *, spec: JobSpec | dict[str, Any], psik_conn_id: str = PsikHook.default_conn_name,
                 wait_for_completion: bool = True, deferrable: bool | None = None, poll_interval: float = 2.0,
                 stream_logs: bool = True, cancel_on_kill: bool = True, run_event: dict[str, Any] | str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        name = task_name(self)
        if isinstance(spec, JobSpec):
            spec = spec.model_dump(mode="json", exclude_none=True)
        if not isinstance(spec, dict) and not resolved_later(spec):
            raise ArgumentError(f"{name}: spec: a JobSpec or a dict, got {type(spec).__name__}")
        if not templated(spec):
            check_model(JobSpec, spec, "spec", name)
        check_positive(poll_interval, "poll_interval", name)
        self.spec = spec
        self.psik_conn_id = psik_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.stream_logs = stream_logs
        self.cancel_on_kill = cancel_on_kill
        self.run_event = run_event
        self.job_id: str | None = None

    def execute(self, context: Any) -> Any:
        spec = check_model(JobSpec, self.spec, "spec", task_name(self))
        try:
            record = PsikHook(self.psik_conn_id).submit(spec)
        except PsikAPIError as exc:
            raise AirflowException(f"Psik-API refused job {spec.name!r}: {exc}") from None
        self.job_id = record.jobid
        self.log.info("job %s (%s) submitted to backend %s: %s", record.jobid, spec.name, spec.backend,
                      record.state.value)
        context["ti"].xcom_push(key="job_id", value=record.jobid)
        if not self.wait_for_completion:
            return record.jobid
        trigger = PsikJobTrigger(jobid=record.jobid, psik_conn_id=self.psik_conn_id, poll_interval=self.poll_interval,
                                 stream_logs=self.stream_logs, cancel_on_kill=self.cancel_on_kill)
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete")
        return self.execute_complete(context, wait_here(trigger))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the wait: the job's outcome (XCom return value), or fail naming state and exit code."""
        if event.get("status") != "success":
            raise AirflowException(event.get("message") or f"job {event.get('jobid')} failed")
        self.log.info("%s", event["message"])
        return {key: event[key] for key in ("jobid", "state", "info", "exit_code")}

    def on_kill(self) -> None:
        if self.job_id is not None and self.cancel_on_kill:
            job_id = self.job_id
            hook = PsikHook(self.psik_conn_id)
            cancel_killed(self.log, f"job {job_id}", lambda: hook.cancel(job_id))
