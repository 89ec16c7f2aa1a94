"""``TransferClient``: the one client library of LCLStream-API (the CLI and the Airflow hooks use it).

    with TransferClient("lclstream") as api:              # a certified service alias, or an https URL
        view = api.request(config, TransferOptions(ranks=2), idempotency_key="mfx123-r42")
        print(view.id, view.url)
        api.status(view.id).state
        creds = api.credentials(view.id)                  # what a consumer needs to pull the data
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from certified.service_client import ServiceClient, ServiceError
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


class TransferClient(ServiceClient):
    """Request, inspect, list and cancel transfers over mutual TLS.

    ``TransferClient(server_alias_or_url, certified_config_dir)`` or ``TransferClient(http=httpx_client)``.
    """

    error = TransferAPIError

    def __enter__(self) -> TransferClient:
        return self

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def request(self, config: str | Path | dict[str, Any], options: TransferOptions | dict[str, Any] | None = None,
                *, idempotency_key: str | None = None) -> TransferView:
        opts = options if isinstance(options, TransferOptions) else TransferOptions.model_validate(options or {})
        body = {"config": load_request_config(config), "options": opts.model_dump(mode="json")}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return TransferView.model_validate(self._call("POST", "/v1/transfers", json=body, headers=headers))

    def status(self, transfer_id: str) -> TransferView:
        return TransferView.model_validate(self._call("GET", f"/v1/transfers/{transfer_id}"))

    def list(self, state: TransferState | str | None = None) -> list[TransferView]:
        params = {"state": str(state)} if state else {}
        return TransferList.model_validate(self._call("GET", "/v1/transfers", params=params)).transfers

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
        return DataCredentials.model_validate(self._call("GET", f"/v1/transfers/{transfer_id}/credentials"))

    def cancel(self, transfer_id: str) -> TransferView:
        return TransferView.model_validate(self._call("DELETE", f"/v1/transfers/{transfer_id}"))
