"""The base every service's client library builds on (``PsikClient``, ``TransferClient``, the Airflow hooks).

It owns the ``httpx.Client`` (mutual TLS with this identity, see ``certified.http.client``, with
explicit :class:`~certified.material.ClientTLS` material, or one the caller passes in), closes it as a
context manager, and turns an HTTP error answer into the service's own exception type carrying the
status code and the service's explanation.

:class:`AsyncServiceClient` is the asynchronous twin on ``httpx.AsyncClient`` (for Airflow triggers,
which must never block the event loop). Both send the same :class:`Call` descriptions and read error
answers with the one function :func:`error_for`, so a service's routes, bodies and answer models are
written once and shared by its sync and async clients::

    def status(transfer_id: str) -> Call[TransferView]:
        return Call("GET", f"/v1/transfers/{transfer_id}", TransferView.model_validate_json)

    view = client.send(status("abc"))           # ServiceClient
    view = await aclient.send(status("abc"))    # AsyncServiceClient
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import BaseModel

from certified.material import ClientTLS

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def format_detail(detail: Any) -> str:
    """A readable sentence from a FastAPI error body (field paths for validation errors)."""
    if isinstance(detail, list):
        parts = []
        for err in detail:
            if isinstance(err, dict):
                loc = ".".join(str(p) for p in err.get("loc", []) if p != "body")
                parts.append(f"{loc}: {err.get('msg', err)}" if loc else str(err.get("msg", err)))
            else:
                parts.append(str(err))
        return "; ".join(parts)
    return str(detail)


class ServiceError(RuntimeError):
    """A service answered with an error: ``status`` is the HTTP code, ``detail`` what it said."""

    service: ClassVar[str] = "service"

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{self.service} error {status}: {format_detail(detail)}")


def error_for(response: httpx.Response, error: type[ServiceError]) -> ServiceError | None:
    """The service's exception for an error answer (None for a success), with what the service said."""
    if not response.is_error:
        return None
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text
    return error(response.status_code, detail)


def text_body(response: httpx.Response) -> str:
    """Read a plain-text answer."""
    return response.text


def model_body(model: type[M]) -> Callable[[httpx.Response], M]:
    """Read a JSON answer into ``model`` (a pydantic model class)."""
    return lambda response: model.model_validate_json(response.content)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request to a service and how to read its successful answer (shared by sync and async clients)."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": self.headers}
        if self.params is not None:
            kwargs["params"] = self.params
        if self.json is not None:
            kwargs["json"] = self.json
        return kwargs


def _endpoint(alias_or_url: str | None, what: str) -> str:
    if alias_or_url is None:
        raise ValueError(f"give a service alias or https URL, or an {what}")
    return alias_or_url


class ServiceClient:
    """A JSON-over-HTTPS client of one service; subclasses set ``error`` and add the service's calls.

    ``ServiceClient(alias_or_url, config_dir)`` (a certified identity folder), ``ServiceClient(url,
    tls=ClientTLS(...))`` (explicit material) or ``ServiceClient(http=httpx_client)``.
    """

    error: ClassVar[type[ServiceError]] = ServiceError

    def __init__(self, alias_or_url: str | None = None, config_dir: str | Path | None = None, *,
                 http: httpx.Client | None = None, timeout: float = 60.0, tls: ClientTLS | None = None) -> None:
        if http is None:
            from certified.http import client

            http = client(_endpoint(alias_or_url, "httpx client"), config_dir, tls=tls, timeout=timeout)
        self.http = http

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; an error answer raises ``self.error(status, detail)``."""
        response = self.http.request(method, path, **kwargs)
        if (exc := error_for(response, self.error)) is not None:
            raise exc
        return response

    def send(self, call: Call[T]) -> T:
        """Send one :class:`Call` and return its parsed answer."""
        return call.parse(self._request(call.method, call.path, **call.request_kwargs()))


class AsyncServiceClient:
    """The asynchronous twin of :class:`ServiceClient` (same constructor, errors and :class:`Call`\\ s)."""

    error: ClassVar[type[ServiceError]] = ServiceError

    def __init__(self, alias_or_url: str | None = None, config_dir: str | Path | None = None, *,
                 http: httpx.AsyncClient | None = None, timeout: float = 60.0,
                 tls: ClientTLS | None = None) -> None:
        if http is None:
            from certified.http import async_client

            http = async_client(_endpoint(alias_or_url, "httpx.AsyncClient"), config_dir, tls=tls, timeout=timeout)
        self.http = http

    async def __aenter__(self) -> AsyncServiceClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; an error answer raises ``self.error(status, detail)``."""
        response = await self.http.request(method, path, **kwargs)
        if (exc := error_for(response, self.error)) is not None:
            raise exc
        return response

    async def send(self, call: Call[T]) -> T:
        """Send one :class:`Call` and return its parsed answer."""
        return call.parse(await self._request(call.method, call.path, **call.request_kwargs()))
