"""The base of the hooks for this project's HTTPS services (LCLStream-API, Psik-API, the ELog).

A hook turns its Airflow connection into that service's own client library (``TransferClient``,
``PsikClient``, ``ElogClient``) and, for triggers, into its asynchronous twin where the service has one;
it adds no behaviour of its own.

The connection: ``host`` is the service's https URL (or a host name, with ``port``), or a certified
service alias when ``certified_config`` names an identity folder on the workers. Mutual TLS comes
from ``client_cert``, ``client_key`` and ``ca_cert`` (file paths or PEM text, e.g. from a secrets
backend), else from the certified folder (``certified_config``, else ``$CERTIFIED_CONFIG``).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Generic, TypeVar

from airflow.sdk import BaseHook
from pydantic import BaseModel, ConfigDict

from airflow_provider_lclstream.hooks.connection import ConnectionFieldError, Extras
from certified.material import ClientTLS
from certified.service_client import AsyncServiceClient, ServiceClient

C = TypeVar("C", bound=ServiceClient)
A = TypeVar("A", bound=AsyncServiceClient)


class ServiceEndpoint(BaseModel):
    """Where a service is and which identity to present to it, read from one connection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    tls: ClientTLS | None = None
    certified_config: str | None = None
    timeout: float = 60.0

    def client(self, cls: type[C]) -> C:
        return cls(self.target, self.certified_config, tls=self.tls, timeout=self.timeout)

    def async_client(self, cls: type[A]) -> A:
        return cls(self.target, self.certified_config, tls=self.tls, timeout=self.timeout)


def endpoint_from(conn: Any) -> ServiceEndpoint:
    """The :class:`ServiceEndpoint` of an Airflow connection; a bad field raises ConnectionFieldError."""
    extras = Extras(conn.conn_id, conn.conn_type or "", conn.extra_dejson)
    host = (conn.host or "").strip()
    if not host:
        raise ConnectionFieldError(conn.conn_id, "host", "required: the service's https URL (or host name)")
    certified_config = extras.text("certified_config")
    tls = extras.client_tls()
    if "://" in host:
        if not host.startswith("https://"):
            raise ConnectionFieldError(conn.conn_id, "host", f"{host!r}: only https:// URLs are allowed")
        target = host.rstrip("/")
    elif tls is None and conn.port is None and certified_config is not None:
        target = host  # a certified service alias
    else:
        target = f"https://{host}" + (f":{conn.port}" if conn.port else "")
    if tls is not None and "://" not in target:
        raise ConnectionFieldError(conn.conn_id, "host", "with client_cert/client_key give an https URL or a port")
    return ServiceEndpoint(target=target, tls=tls, certified_config=certified_config,
                           timeout=extras.number("timeout", 60.0))


class ServiceHook(BaseHook, Generic[C, A]):
    """Turns one connection into a service's client (``get_conn``) and its async twin (``aget_conn``)."""

    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    client_class: ClassVar[type[ServiceClient]]
    async_client_class: ClassVar[type[AsyncServiceClient] | None] = None  # None: the service has no async client

    def __init__(self, conn_id: str | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self._client: C | None = None

    def endpoint(self) -> ServiceEndpoint:
        return endpoint_from(self.get_connection(self.conn_id))

    def get_conn(self) -> C:
        """The service's client library, built once per hook."""
        if self._client is None:
            self._client = self.endpoint().client(self.client_class)  # type: ignore[assignment]
        assert self._client is not None
        return self._client

    async def aget_conn(self) -> A:
        """A new asynchronous client (the caller closes it); nothing here blocks the event loop."""
        if self.async_client_class is None:
            raise TypeError(f"{type(self).__name__}: {self.hook_name} has no asynchronous client; use get_conn()")
        endpoint = endpoint_from(await self.aget_connection(self.conn_id))
        # loading certificates reads files and may write a private temporary folder: off the loop
        return await asyncio.to_thread(endpoint.async_client, self.async_client_class)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
