"""One shape for every service's error answers, which never echoes a large input back.

Every answer is ``{"detail": ...}``: a sentence, or for bad fields a list of
``{"loc": ["body", "options", "ranks"], "msg": "...", "type": "..."}`` (FastAPI's shape, so
``certified.service_client.format_detail`` reads both). FastAPI's own validation answer also carries
each field's ``input`` and pydantic's ``ctx``/``url``: a 1 MB string sent as a backend name would come
back whole. Here inputs are dropped, values quoted inside messages are shortened (``quoted``), long
texts are cut and long error lists end with a count, so an answer stays a few kilobytes at most.

Usage in a service's ``create_app``::

    app = FastAPI(...)
    install_error_handlers(app)
    raise HTTPException(404, f"no job {quoted(jobid)}")   # or error_response(404, "...")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # FastAPI is imported only where answers are made: psik's job tools use quoted() too
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

MAX_MESSAGE = 1000  # characters of one message (the sentence around a shortened value)
MAX_VALUE = 60  # characters of a user's value quoted inside a message or a field path
MAX_ERRORS = 20  # field errors listed in one answer; the rest are counted
SCHEMA_CONTEXT = frozenset({"expected_tags", "expected", "pattern", "discriminator"})  # pydantic ctx from the schema


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out; always encodable as UTF-8."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return _plain(text)


def _plain(text: str) -> str:
    """``text`` encodable as UTF-8: a lone surrogate from JSON becomes '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


def quoted(value: object, limit: int = MAX_VALUE) -> str:
    """``repr(value)`` for a message, shortened to ``limit`` characters of the value."""
    text = _plain(value if isinstance(value, str) else repr(value))
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    return f"{text[:limit]!r}... ({len(text)} characters)"


def field_error(loc: Iterable[str | int], msg: str, type_: str = "value_error") -> dict[str, Any]:
    """One entry of a 422 answer: the field's path, what is wrong, and a machine-readable type."""
    path = [p if isinstance(p, int) else shorten(str(p), MAX_VALUE) for p in loc]
    return {"loc": path, "msg": shorten(msg), "type": type_}


def _without_values(msg: str, values: Iterable[Any]) -> str:
    for value in values:
        if isinstance(value, str) and len(value) > MAX_VALUE and value in msg:
            msg = msg.replace(value, shorten(value, MAX_VALUE))
    return msg


def field_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI error dicts as answer entries: path, message and type, never the input."""
    out = []
    for err in errors[:MAX_ERRORS]:
        ctx = err.get("ctx") or {}
        from_input = [v for k, v in ctx.items() if k not in SCHEMA_CONTEXT]  # e.g. the tag a union was given
        msg = _without_values(str(err.get("msg", "")), [err.get("input"), *from_input])
        out.append(field_error(err.get("loc", ()), msg, str(err.get("type", "value_error"))))
    if len(errors) > MAX_ERRORS:
        out.append({"loc": [], "msg": f"... and {len(errors) - MAX_ERRORS} more errors", "type": "too_many_errors"})
    return out


def error_content(detail: Any) -> dict[str, Any]:
    """The JSON body of an error answer: a shortened sentence, or shortened field errors."""
    if isinstance(detail, list):
        return {"detail": field_errors([d if isinstance(d, Mapping) else {"msg": str(d)} for d in detail])}
    return {"detail": shorten(str(detail))}


def error_response(status: int, detail: Any, headers: Mapping[str, str] | None = None) -> JSONResponse:
    from fastapi.responses import JSONResponse

    return JSONResponse(error_content(detail), status_code=status, headers=dict(headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    """Answer validation errors (422) and HTTP errors in the shape above, without their inputs."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, list(exc.errors()))

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (204, 304):  # answers that have no body
            return Response(status_code=exc.status_code, headers=exc.headers)
        return error_response(exc.status_code, exc.detail, exc.headers)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


def answer_with_status(app: FastAPI, statuses: Mapping[type[Exception], int]) -> None:
    """Answer each exception type with its HTTP status and the exception's text as the detail."""
    from fastapi import Request

    for kind, status in statuses.items():
        async def answer(_request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return error_response(status, str(exc))

        app.add_exception_handler(kind, answer)
