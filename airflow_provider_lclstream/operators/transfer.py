"""``LCLStreamTransferOperator``: request a transfer from LCLStream-API and wait for it.

Submit on the worker, wait in a trigger (the shape of the official dbt-cloud operator): ``execute``
requests the transfer (idempotently: the key defaults to the run's ``experiment/run``, so a
re-delivered run_start starts no second transfer), pushes ``transfer_id``, ``url`` and ``created``
(False when an earlier request with the same key made the transfer) to XCom at once, then returns when the awaited state is reached, defers to :class:`TransferTrigger` (the
default) or, with ``deferrable=False``, waits on the worker. The task succeeds only on the awaited
state; a failed or canceled transfer fails it with the service's reason and the last log lines.
Its return value (XCom) is the transfer's summary: id, url, messages and bytes delivered, duration,
rates. Killing the task cancels the transfer.

The streamer config is a template: a file (``.yaml``, ``.yml``, ``.json``, found through the DAG's
template search path) or a dict, rendered with Airflow's context plus ``run_event`` (the run this
task works for: ``{{ run_event.experiment }}``, ``{{ run_event.run }}``, ``{{ run_event.detectors }}``,
``{{ run_event.run_dir }}``, ``{{ run_event.key }}``)::

    LCLStreamTransferOperator(task_id="transfer", config="mfx_jungfrau.yaml",
                              options={"ranks": 4, "backend": "slurm", "idle_timeout": 300})
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_lclstream.arguments import (
    ArgumentError,
    check_choice,
    check_model,
    check_positive,
    default_deferrable,
    resolved_later,
    task_name,
    templated,
    wait_here,
)
from airflow_provider_lclstream.cancel import cancel_killed
from airflow_provider_lclstream.hooks.lclstream import LCLStreamHook
from airflow_provider_lclstream.run_event_context import RunEventTemplating, context_run_event
from airflow_provider_lclstream.transfer_wait import TransferCondition, event_payload
from airflow_provider_lclstream.triggers.polling import transient
from airflow_provider_lclstream.triggers.transfer import TransferTrigger
from lclstream_api.client import TransferAPIError, load_request_config
from lclstream_api.models import TransferOptions
from streamer.config import ConfigError, load_config

WAIT_FOR = ("starting", "streaming", "completed")


def transfer_outcome(event: dict[str, Any], log: Any) -> dict[str, Any]:
    """The summary of a finished wait for a transfer; a failed wait fails the task (no retry helps)."""
    if event.get("status") != "success":
        raise AirflowFailException(event.get("message") or f"transfer {event.get('transfer_id')} failed")
    summary = event["summary"]
    log.info("%s; transfer %s %s: %d messages, %d bytes delivered in %.1f s", event["message"],
             summary["transfer_id"], summary["state"], summary["messages_delivered"], summary["bytes_delivered"],
             summary["duration_s"])
    return summary


class LCLStreamTransferOperator(RunEventTemplating, BaseOperator):
    """Request an LCLStream transfer and wait until it is streaming or completed.

    :param config: the streamer config: a template file name (``.yaml``/``.yml``/``.json``), YAML text,
        or a dict; rendered with the context and ``run_event``. The service replaces its data_handlers.
    :param options: transfer options, validated as ``TransferOptions`` (ranks, backend, tls,
        idle_timeout, total_timeout, max_bytes, ...).
    :param idempotency_key: asking twice with one key starts one transfer; default: the run event's
        ``experiment/run`` when there is one, else none.
    :param run_event: the run this transfer is for (a dict, e.g. mapped from ``run_events``); default:
        the run event that triggered the DAG run, if any.
    :param lclstream_conn_id: the ``lclstream`` connection.
    :param wait_for: ``completed`` (default), ``streaming``, or ``starting`` (return once the transfer's jobs
        are submitted: a consumer started then is ready when the producers begin).
    :param deferrable: wait in the triggerer (default, unless ``[operators] default_deferrable`` says no).
    :param poll_interval: seconds between two looks at the transfer while waiting.
    :param cancel_on_kill: cancel the transfer when the task is killed (default True).
    """

    template_fields: Sequence[str] = ("config", "options", "idempotency_key", "run_event")
    template_ext: Sequence[str] = (".yaml", ".yml", ".json")
    template_fields_renderers = {"config": "yaml", "options": "json", "run_event": "json"}
    ui_color = "#d8e6f3"

    def __init__(self, *, config: str | dict[str, Any], options: TransferOptions | dict[str, Any] | None = None,
                 idempotency_key: str | None = None, run_event: dict[str, Any] | str | None = None,
                 lclstream_conn_id: str = LCLStreamHook.default_conn_name,
                 wait_for: Literal["starting", "streaming", "completed"] = "completed", deferrable: bool | None = None,
                 poll_interval: float = 2.0, cancel_on_kill: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        name = task_name(self)
        if not isinstance(config, str | dict) and not resolved_later(config):
            raise ArgumentError(f"{name}: config: a template file name, YAML text or a dict, "
                                f"got {type(config).__name__}")
        if isinstance(config, dict) and not templated(config):
            try:
                load_config(config)
            except ConfigError as exc:
                raise ArgumentError(f"{name}: config: {exc}") from None
        if isinstance(options, TransferOptions):
            options = options.model_dump(mode="json", exclude_unset=True)
        if options is not None and not isinstance(options, dict) and not resolved_later(options):
            raise ArgumentError(f"{name}: options: a dict of transfer options, got {type(options).__name__}")
        if options and not templated(options):
            check_model(TransferOptions, options, "options", name)
        check_choice(wait_for, WAIT_FOR, "wait_for", name)
        check_positive(poll_interval, "poll_interval", name)
        self.config = config
        self.options = options or {}
        self.idempotency_key = idempotency_key
        self.run_event = run_event
        self.lclstream_conn_id = lclstream_conn_id
        self.wait_for = wait_for
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.cancel_on_kill = cancel_on_kill
        self.transfer_id: str | None = None

    def _streamer_config(self) -> dict[str, Any]:
        if isinstance(self.config, dict):
            return self.config
        data = yaml.safe_load(self.config)  # the rendered file, or YAML text
        if isinstance(data, dict):
            return data
        return load_request_config(Path(self.config))  # a file path without a template extension

    def execute(self, context: Any) -> dict[str, Any]:
        name = task_name(self)
        options = check_model(TransferOptions, self.options, "options", name).model_dump(mode="json", exclude_unset=True)
        key = self.idempotency_key
        if not key and (event := context_run_event(context, self.run_event)) is not None:
            key = event.key
        hook = LCLStreamHook(self.lclstream_conn_id)
        try:
            view, created = hook.request_or_find(self._streamer_config(), options, idempotency_key=key)
        except TransferAPIError as exc:
            if transient(exc):  # busy (429) or broken for now (5xx): a retry of the task may succeed
                raise AirflowException(f"LCLStream-API could not take the transfer now: {exc}") from None
            raise AirflowFailException(f"LCLStream-API refused the transfer: {exc}") from None
        self.transfer_id = view.id
        self.log.info("transfer %s (%s) for %s: data at %s%s", view.id, view.state.value, key or "no idempotency key",
                      view.url, "" if created else " (made earlier by a request with the same idempotency key)")
        context["ti"].xcom_push(key="transfer_id", value=view.id)
        context["ti"].xcom_push(key="url", value=view.url)
        context["ti"].xcom_push(key="created", value=created)
        condition = TransferCondition(state=self.wait_for)
        verdict = condition.check(view)
        if verdict.done:
            return self.execute_complete(context, event_payload(view, verdict))
        trigger = TransferTrigger(transfer_id=view.id, condition=condition.model_dump(exclude_none=True),
                                  lclstream_conn_id=self.lclstream_conn_id, poll_interval=self.poll_interval,
                                  cancel_on_kill=self.cancel_on_kill)
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete")
        return self.execute_complete(context, wait_here(trigger))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the wait: the summary (XCom return value), or fail with the service's reason."""
        return transfer_outcome(event, self.log)

    def on_kill(self) -> None:
        if self.transfer_id is not None and self.cancel_on_kill:
            transfer_id = self.transfer_id
            hook = LCLStreamHook(self.lclstream_conn_id)
            cancel_killed(self.log, f"transfer {transfer_id}", lambda: hook.cancel(transfer_id))
