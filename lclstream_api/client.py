"""``TransferClient``: the one client library of LCLStream-API (the CLI and the Airflow hooks use it).

    with TransferClient("lclstream") as api:              # a certified service alias, or an https URL
        view = api.request(config, TransferOptions(ranks=2), idempotency_key="mfx123-r42")
        print(view.id, view.url)
        api.status(view.id).state
        creds = api.credentials(view.id)                  # what a consumer needs to pull the data

``AsyncTransferClient`` is its asynchronous twin (Airflow triggers poll with it). Both send the
requests described once in :class:`TransferCalls`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from certified.service_client import AsyncServiceClient, Call, ServiceClient, ServiceError, model_body
from lclstream_api.models import DataCredentials, TransferList, TransferOptions, TransferView
from lclstream_api.states import TERMINAL, TransferState


class TransferAPIError(ServiceError):
    """LCLStream-API answered with an error; ``status`` is the HTTP status, ``detail`` its explanation."""

    service = "LCLStream-API"


def load_request_config(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A streamer config as a dict, from a YAML/JSON file or a dict (validated by the service)."""
    if isinstance(source, dict):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"streamer config file {str(path)!r} does not exist")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"streamer config {str(path)!r} must be a mapping of sections")
    return data


def _views(response: httpx.Response) -> list[TransferView]:
    return TransferList.model_validate_json(response.content).transfers


_view = model_body(TransferView)


class TransferCalls:
    """The requests of LCLStream-API's transfer routes, and the models their answers are read into."""

    @staticmethod
    def request(config: str | Path | dict[str, Any], options: TransferOptions | dict[str, Any] | None = None,
                idempotency_key: str | None = None) -> Call[TransferView]:
        opts = options if isinstance(options, TransferOptions) else TransferOptions.model_validate(options or {})
        body = {"config": load_request_config(config), "options": opts.model_dump(mode="json")}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return Call("POST", "/v1/transfers", _view, json=body, headers=headers)

    @staticmethod
    def request_or_find(config: str | Path | dict[str, Any], options: TransferOptions | dict[str, Any] | None = None,
                        idempotency_key: str | None = None) -> Call[tuple[TransferView, bool]]:
        """The same request; its answer says whether it made the transfer (201) or found the one an earlier
        request with this idempotency key made (200)."""
        return dataclasses.replace(TransferCalls.request(config, options, idempotency_key),
                                   parse=lambda r: (_view(r), r.status_code == 201))

    @staticmethod
    def status(transfer_id: str) -> Call[TransferView]:
        return Call("GET", f"/v1/transfers/{transfer_id}", _view)

    @staticmethod
    def list(state: TransferState | str | None = None) -> Call[list[TransferView]]:
        return Call("GET", "/v1/transfers", _views, params={"state": str(state)} if state else {})

    @staticmethod
    def credentials(transfer_id: str) -> Call[DataCredentials]:
        return Call("GET", f"/v1/transfers/{transfer_id}/credentials", model_body(DataCredentials))

    @staticmethod
    def cancel(transfer_id: str) -> Call[TransferView]:
        return Call("DELETE", f"/v1/transfers/{transfer_id}", _view)


class TransferClient(ServiceClient):
    """Request, inspect, list and cancel transfers over mutual TLS.

    ``TransferClient(server_alias_or_url, certified_config_dir)``, ``TransferClient(url, tls=ClientTLS(...))``
    or ``TransferClient(http=httpx_client)``.
    """

    error = TransferAPIError

    def __enter__(self) -> TransferClient:
        return self

    def request(self, config: str | Path | dict[str, Any], options: TransferOptions | dict[str, Any] | None = None,
                *, idempotency_key: str | None = None) -> TransferView:
        return self.send(TransferCalls.request(config, options, idempotency_key))

    def request_or_find(self, config: str | Path | dict[str, Any],
                        options: TransferOptions | dict[str, Any] | None = None, *,
                        idempotency_key: str | None = None) -> tuple[TransferView, bool]:
        """Like ``request``; also says whether this call made the transfer (False: an earlier request with
        the same idempotency key did, and this is that transfer)."""
        return self.send(TransferCalls.request_or_find(config, options, idempotency_key))

    def status(self, transfer_id: str) -> TransferView:
        return self.send(TransferCalls.status(transfer_id))

    def list(self, state: TransferState | str | None = None) -> list[TransferView]:
        return self.send(TransferCalls.list(state))

    def wait(self, transfer_id: str, timeout: float = 60.0, interval: float = 0.5,
             states: frozenset[TransferState] = TERMINAL) -> TransferView:
        """Poll until the transfer is in one of ``states`` (default: terminal) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        view = self.status(transfer_id)
        while view.state not in states and time.monotonic() < deadline:
            time.sleep(interval)
            view = self.status(transfer_id)
        return view

    def credentials(self, transfer_id: str) -> DataCredentials:
        """How to pull a transfer's data (for its owner and its readers): url, CA, a certificate made now."""
        return self.send(TransferCalls.credentials(transfer_id))

    def cancel(self, transfer_id: str) -> TransferView:
        return self.send(TransferCalls.cancel(transfer_id))


class AsyncTransferClient(AsyncServiceClient):
    """The asynchronous twin of :class:`TransferClient`, for event loops (Airflow triggers)."""

    error = TransferAPIError

    async def __aenter__(self) -> AsyncTransferClient:
        return self

    async def request(self, config: str | Path | dict[str, Any],
                      options: TransferOptions | dict[str, Any] | None = None, *,
                      idempotency_key: str | None = None) -> TransferView:
        return await self.send(TransferCalls.request(config, options, idempotency_key))

    async def status(self, transfer_id: str) -> TransferView:
        return await self.send(TransferCalls.status(transfer_id))

    async def list(self, state: TransferState | str | None = None) -> list[TransferView]:
        return await self.send(TransferCalls.list(state))

    async def credentials(self, transfer_id: str) -> DataCredentials:
        return await self.send(TransferCalls.credentials(transfer_id))

    async def cancel(self, transfer_id: str) -> TransferView:
        return await self.send(TransferCalls.cancel(transfer_id))
