"""``TransferClient``: the one client library of LCLStream-API (the CLI and the Airflow hooks use it).

    with TransferClient("lclstream") as api:              # a certified service alias, or an https URL
        view = api.request(config, TransferOptions(ranks=2), idempotency_key="mfx123-r42")
        print(view.id, view.url)
        api.status(view.id).state
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from lclstream_api.models import TransferList, TransferOptions, TransferView
from lclstream_api.states import TERMINAL, TransferState


class TransferAPIError(RuntimeError):
    """The service answered with an error; ``status`` is the HTTP status, ``detail`` its explanation."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {format_detail(detail)}")


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


class TransferClient:
    """Request, inspect, list and cancel transfers over mutual TLS."""

    def __init__(self, server: str | None = None, config_dir: str | Path | None = None, *,
                 http: httpx.Client | None = None, timeout: float = 60.0) -> None:
        if http is None:
            if server is None:
                raise ValueError("give a server alias or URL, or an httpx client")
            from certified.http import client

            http = client(server, config_dir, timeout=timeout)
        self.http = http

    def __enter__(self) -> TransferClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise TransferAPIError(response.status_code, detail)
        return response.json()

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

    def cancel(self, transfer_id: str) -> TransferView:
        return TransferView.model_validate(self._call("DELETE", f"/v1/transfers/{transfer_id}"))
