"""``TransferTrigger``: wait, on the triggerer, until a transfer meets a condition or ends.

It only polls (``GET /v1/transfers/{id}``; a re-run after a triggerer restart sends nothing new),
logs each state change of the transfer as it happens and each change in connected consumers, and
fires once: ``status`` ``success`` when the condition is met, ``error`` with the service's reason,
the transfer id and the last log lines of its jobs when it ended otherwise (failed, canceled, or
completed without meeting the condition). ``on_kill`` (a user marking the deferred task failed or
cleared) cancels the transfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_lclstream.cancel import acancel_killed
from airflow_provider_lclstream.hooks.lclstream import LCLStreamHook
from airflow_provider_lclstream.transfer_wait import TransferCondition, event_payload, transitions
from airflow_provider_lclstream.triggers.polling import Poller
from lclstream_api.client import TransferAPIError

CLASSPATH = "airflow_provider_lclstream.triggers.transfer.TransferTrigger"


class TransferTrigger(BaseTrigger):
    """Polls one transfer until ``condition`` holds or the transfer ends.

    :param transfer_id: the transfer.
    :param condition: a :class:`~airflow_provider_lclstream.transfer_wait.TransferCondition` as a dict
        (``{"state": "completed"}``, ``{"consumers": 2}``, ...).
    :param lclstream_conn_id: the ``lclstream`` connection.
    :param poll_interval: seconds between two looks at the transfer.
    :param cancel_on_kill: cancel the transfer when a user kills the deferred task.
    """

    def __init__(self, *, transfer_id: str, condition: dict[str, Any],
                 lclstream_conn_id: str = LCLStreamHook.default_conn_name, poll_interval: float = 2.0,
                 cancel_on_kill: bool = True) -> None:
        super().__init__()
        self.transfer_id = transfer_id
        self.condition = TransferCondition.model_validate(condition).model_dump(exclude_none=True)
        self.lclstream_conn_id = lclstream_conn_id
        self.poll_interval = poll_interval
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"transfer_id": self.transfer_id, "condition": self.condition,
                           "lclstream_conn_id": self.lclstream_conn_id, "poll_interval": self.poll_interval,
                           "cancel_on_kill": self.cancel_on_kill}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        condition = TransferCondition.model_validate(self.condition)
        self.log.info("waiting for transfer %s to reach %s", self.transfer_id, condition.describe())
        client = await LCLStreamHook(self.lclstream_conn_id).aget_conn()
        poller = Poller(self.log, f"transfer {self.transfer_id}", self.poll_interval)
        seen, consumers = 0, 0
        try:
            while True:
                try:
                    view = await poller.fetch(lambda: client.status(self.transfer_id))
                except TransferAPIError as exc:
                    yield TriggerEvent({"status": "error", "transfer_id": self.transfer_id,
                                        "message": f"transfer {self.transfer_id}: {exc}", "summary": None})
                    return
                for line in transitions(view, seen):
                    self.log.info("%s", line)
                seen = len(view.log)
                now = view.metrics.consumers_connected if view.metrics else 0
                if now != consumers:
                    self.log.info("transfer %s: %d consumers connected", self.transfer_id, now)
                    consumers = now
                verdict = condition.check(view)
                if verdict.done:
                    yield TriggerEvent(event_payload(view, verdict))
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await client.aclose()

    async def on_kill(self) -> None:
        if self.cancel_on_kill:
            await acancel_killed(self.log, f"transfer {self.transfer_id}", LCLStreamHook(self.lclstream_conn_id),
                                 lambda client: client.cancel(self.transfer_id))
