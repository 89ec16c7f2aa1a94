"""``BufferSensor``: wait until a transfer's buffer reaches a condition.

Conditions (all given must hold): ``consumers=n`` (at least n consumers connected), ``streaming``
(the first producer connected), ``drained`` (every message delivered, the transfer completed),
``messages=m`` (at least m messages delivered). It fails at once when the transfer ends in failed or
canceled, or completes without meeting the condition, instead of waiting out its timeout.
Deferrable by default (``TransferTrigger``), or poke/reschedule mode with ``deferrable=False``::

    BufferSensor(task_id="consumer_connected", consumers=1,
                 transfer_id="{{ ti.xcom_pull(task_ids='transfer', key='transfer_id') }}")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_lclstream.arguments import (
    ArgumentError,
    check_model,
    check_positive,
    default_deferrable,
    task_name,
)
from airflow_provider_lclstream.hooks.lclstream import LCLStreamHook
from airflow_provider_lclstream.operators.transfer import transfer_outcome
from airflow_provider_lclstream.transfer_wait import TransferCondition, failure_message, summary
from airflow_provider_lclstream.triggers.polling import transient
from airflow_provider_lclstream.triggers.transfer import TransferTrigger


class BufferSensor(BaseSensorOperator):
    """Wait for a transfer's buffer: consumers connected, streaming, drained, or messages delivered.

    :param transfer_id: the transfer (templated, e.g. from the transfer task's XCom).
    :param consumers: wait until at least this many consumers connected.
    :param streaming: wait until the transfer streams (its first producer connected).
    :param drained: wait until the buffer delivered everything and the transfer completed.
    :param messages: wait until at least this many messages were delivered.
    :param lclstream_conn_id: the ``lclstream`` connection.
    :param deferrable: wait in the triggerer (default, unless ``[operators] default_deferrable`` says no).
    """

    template_fields: Sequence[str] = ("transfer_id",)
    ui_color = "#f3ecd8"

    def __init__(self, *, transfer_id: str, consumers: int | None = None, streaming: bool = False,
                 drained: bool = False, messages: int | None = None,
                 lclstream_conn_id: str = LCLStreamHook.default_conn_name, deferrable: bool | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        name = task_name(self)
        if not (consumers or streaming or drained or messages):
            raise ArgumentError(f"{name}: give at least one of consumers, streaming, drained, messages")
        state = "completed" if drained else "streaming" if streaming else None
        self.condition = check_model(TransferCondition, {"state": state, "consumers": consumers,
                                                         "messages": messages}, "", name)
        check_positive(self.poke_interval, "poke_interval", name)
        self.transfer_id = transfer_id
        self.lclstream_conn_id = lclstream_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def poke(self, context: Any) -> PokeReturnValue:
        hook = LCLStreamHook(self.lclstream_conn_id)
        try:
            view = hook.status(self.transfer_id)
        except Exception as exc:
            if transient(exc):  # the service restarting, the network: the next poke tries again
                self.log.warning("transfer %s: LCLStream-API not answering (%s); trying again", self.transfer_id, exc)
                return PokeReturnValue(is_done=False)
            raise AirflowFailException(f"transfer {self.transfer_id}: {exc}") from None
        finally:
            hook.close()
        verdict = self.condition.check(view)
        if verdict.failed:
            raise AirflowFailException(failure_message(view, verdict.reason))
        self.log.info("%s", verdict.reason if verdict.done else
                      f"{verdict.reason}; waiting for {self.condition.describe()}")
        return PokeReturnValue(is_done=verdict.done, xcom_value=summary(view) if verdict.done else None)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer(trigger=TransferTrigger(transfer_id=self.transfer_id,
                                           condition=self.condition.model_dump(exclude_none=True),
                                           lclstream_conn_id=self.lclstream_conn_id,
                                           poll_interval=float(self.poke_interval), cancel_on_kill=False),
                   method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        return transfer_outcome(event, self.log)
