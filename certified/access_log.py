"""ASGI middleware writing one JSON line per HTTP request: caller identity, method, path, status."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from certified.caller import caller_from_scope

ACCESS_LOGGER = "certified.access"


class AccessLog:
    """Wraps an ASGI app; logs to the ``certified.access`` logger at INFO after each response."""

    def __init__(self, app: Any, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.log = logger or logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_and_watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            who = caller_from_scope(scope)
            client = scope.get("client")
            self.log.info(json.dumps({
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "caller": who.name if who else None,
                "issuer": who.issuer if who else None,
                "trusted_as": who.vouched_by if who else None,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status["code"],
                "client": f"{client[0]}:{client[1]}" if client else None,
                "ms": round((time.perf_counter() - start) * 1000, 2),
            }))
