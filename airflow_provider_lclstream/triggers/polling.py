"""Polling a service from a trigger: transient failures are retried with backoff and logged once.

A trigger that waits for a transfer or a job asks its service every few seconds. When the service
restarts or the network hiccups (a connection error, a 5xx or 429 answer) the trigger keeps waiting:
it retries with exponential backoff and logs one line when the trouble starts and one when it ends,
never one per attempt. Any other error answer (a 404 for a transfer the caller may not see, say) is
the service's final word and is raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from certified.service_client import ServiceError

T = TypeVar("T")
BACKOFF_MAX_S = 30.0


def transient(exc: BaseException) -> bool:
    """Worth retrying: the network, or the service saying it is busy or broken for now."""
    if isinstance(exc, ServiceError):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, httpx.TransportError)


class Poller:
    """Calls one async request, retrying transient failures; ``what`` names the thing in log lines."""

    def __init__(self, log: logging.Logger, what: str, interval: float) -> None:
        self.log = log
        self.what = what
        self.interval = interval
        self.trouble: str | None = None

    async def fetch(self, request: Callable[[], Awaitable[T]]) -> T:
        backoff = self.interval
        while True:
            try:
                result = await request()
            except Exception as exc:
                if not transient(exc):
                    raise
                if self.trouble is None:
                    self.log.warning("%s: service unreachable (%s); retrying with backoff", self.what, exc)
                self.trouble = str(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            if self.trouble is not None:
                self.log.info("%s: service reachable again", self.what)
                self.trouble = None
            return result
