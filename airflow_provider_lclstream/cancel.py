"""Cancelling the remote work of a killed task: a transfer or a job, from the worker or the triggerer.

One piece for the operators' ``on_kill`` (blocking, on the worker) and the triggers' ``on_kill``
(async, on the triggerer's loop): cancel, log one line saying what happened, and never raise (the
work may have ended meanwhile: the service then answers 409 and says why).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from airflow_provider_lclstream.hooks.service import ServiceHook
from certified.service_client import AsyncServiceClient, ServiceError

A = TypeVar("A", bound=AsyncServiceClient)


def cancel_killed(log: Any, what: str, cancel: Callable[[], object]) -> None:
    """Cancel ``what`` (e.g. "transfer abc") because its task was killed."""
    try:
        cancel()
        log.info("%s canceled (the task was killed)", what)
    except ServiceError as exc:
        log.info("%s not canceled: %s", what, exc)


async def acancel_killed(log: Any, what: str, hook: ServiceHook[Any, A], cancel: Callable[[A], Awaitable[object]]) -> None:
    """The asynchronous twin of :func:`cancel_killed`, for a trigger's ``on_kill``."""
    client = await hook.aget_conn()
    try:
        await cancel(client)
        log.info("%s canceled (the task was killed)", what)
    except ServiceError as exc:
        log.info("%s not canceled: %s", what, exc)
    finally:
        await client.aclose()
