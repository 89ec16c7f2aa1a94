"""ASGI middleware in front of every service app: bounded request bodies, finite JSON numbers.

``certified.serve`` wraps each app it serves in ``RequestGuard(app, max_body)``, so Psik-API,
LCLStream-API and the ELog service refuse the same things the same way, before their own code runs:

* a body over ``max_body`` bytes gets 413 without being read: a ``Content-Length`` above the limit is
  answered at once, and a body without one (chunked) is counted as it arrives and refused at the first
  chunk past the limit, so no more than ``max_body`` bytes are ever held; the connection is closed;
* a JSON body (``application/json``, ``+json`` or no content type, as FastAPI decides) holding NaN,
  Infinity, a number too large for a float or a string that is not Unicode text (an unpaired
  surrogate) gets 422 naming each field (``{"loc": ["body", "options", "idle_timeout"], ...}``, see
  ``certified.json_scan``); so does one Python cannot read at all (an integer of thousands of digits,
  nesting too deep for its parser).

The body read here (at most ``max_body`` bytes) is handed to the app unchanged. Each refusal is one
JSON line (``{"event": "request refused", "status", "reason", "caller", ...}``) on the
``certified.serve`` logger.
"""

from __future__ import annotations

import json
import logging
from email.message import Message
from typing import Any

from certified.api_errors import error_content, field_error
from certified.caller import caller_from_scope
from certified.json_scan import json_problems

log = logging.getLogger("certified.serve")

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: a streamer config or job spec is a few kilobytes


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def is_json(content_type: str | None) -> bool:
    """Whether FastAPI reads a body of this content type as JSON (no type at all counts)."""
    if not content_type:
        return True
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


async def answer(send: Any, status: int, content: dict[str, Any], *, close: bool = False) -> None:
    """Send one JSON response from plain ASGI; ``close`` ends the connection afterwards."""
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Wraps an ASGI app: 413 for bodies over ``max_body`` bytes, 422 for non-finite JSON numbers."""

    def __init__(self, app: Any, max_body: int = DEFAULT_MAX_BODY) -> None:
        if max_body < 1:
            raise ValueError(f"max_body must be at least 1 byte, got {max_body}")
        self.app = app
        self.max_body = max_body

    def _refused(self, scope: dict[str, Any], status: int, why: str) -> None:
        """One JSON line on the ``certified.serve`` logger, like ``certified.authenticate``'s refusals."""
        who = caller_from_scope(scope)
        client = scope.get("client")
        log.warning(json.dumps({
            "event": "request refused", "status": status, "reason": why, "caller": who.name if who else None,
            "client": f"{client[0]}:{client[1]}" if client else None,
            "method": scope.get("method"), "path": scope.get("path")}))

    async def _too_large(self, scope: dict[str, Any], send: Any, size: str) -> None:
        why = (f"request body of {size} bytes is over this service's limit of {self.max_body} bytes "
               "(max_body_bytes in its configuration)")
        self._refused(scope, 413, why)
        await answer(send, 413, error_content(why), close=True)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_body:
            await self._too_large(scope, send, declared.strip())
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(scope, send, f"more than {self.max_body}")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and is_json(_header(scope, b"content-type")):
            problems = self._json_problems(body)
            if problems:
                self._refused(scope, 422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in problems))
                await answer(send, 422, {"detail": problems})
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect, as the server would
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _json_problems(body: bytes) -> list[dict[str, Any]]:
        try:
            problems = json_problems(body)
        except json.JSONDecodeError:
            return []  # not JSON at all: the app says so in its own words
        except RecursionError:
            why = "JSON nested too deeply to read"
        except UnicodeDecodeError:
            why = "JSON that is not UTF-8 text"
        except ValueError:  # Python refuses integers of more than 4300 digits
            why = "JSON holding an integer with too many digits to read"
        else:
            return [field_error(["body", *path], reason, "json_value") for path, reason in problems]
        return [field_error(["body"], f"cannot be read: {why}", "json_invalid")]
