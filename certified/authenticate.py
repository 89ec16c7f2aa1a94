"""ASGI middleware in front of every app ``certified.serve`` runs: the caller's name must be vouched for.

For each HTTP request that arrived with a verified client certificate it asks ``ClientTrust`` which
trust entry signed it and whether that entry may vouch for the certificate's name. A vouched caller
goes into the scope (``certified.caller.caller_from_scope``); anyone else gets 403 with the reason,
and one JSON line on the ``certified.serve`` logger says who was refused and why. The app never sees
a refused request, whatever its routes do.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from certified.caller import SCOPE_KEY, CallerRefused, ClientTrust, peer_pem
from certified.request_guard import answer

log = logging.getLogger("certified.serve")


class Authenticate:
    def __init__(self, app: Any, trust: ClientTrust) -> None:
        self.app = app
        self.trust = trust

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        pem = peer_pem(scope) if scope["type"] in ("http", "websocket") else None
        if pem is None:
            await self.app(scope, receive, send)
            return
        try:
            scope[SCOPE_KEY] = self.trust.identify(pem)
        except CallerRefused as refused:
            client = scope.get("client")
            log.warning(json.dumps({
                "event": "caller refused", "reason": refused.reason, "subject": refused.subject,
                "issuer": refused.issuer, "trusted_as": refused.vouched_by,
                "client": f"{client[0]}:{client[1]}" if client else None,
                "method": scope.get("method"), "path": scope.get("path")}))
            await _forbidden(scope, send, refused.reason)
            return
        await self.app(scope, receive, send)


async def _forbidden(scope: dict[str, Any], send: Any, reason: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await answer(send, 403, {"detail": f"not authenticated: {reason}"})
