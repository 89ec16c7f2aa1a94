"""The base every service's client library builds on (``PsikClient``, ``TransferClient``, the Airflow hooks).

It owns the ``httpx.Client`` (mutual TLS with this identity, see ``certified.http.client``, or one the
caller passes in), closes it as a context manager, and turns an HTTP error answer into the service's
own exception type carrying the status code and the service's explanation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import httpx


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


class ServiceClient:
    """A JSON-over-HTTPS client of one service; subclasses set ``error`` and add the service's calls."""

    error: ClassVar[type[ServiceError]] = ServiceError

    def __init__(self, alias_or_url: str | None = None, config_dir: str | Path | None = None, *,
                 http: httpx.Client | None = None, timeout: float = 60.0) -> None:
        if http is None:
            if alias_or_url is None:
                raise ValueError("give a service alias or https URL, or an httpx client")
            from certified.http import client

            http = client(alias_or_url, config_dir, timeout=timeout)
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
        if response.is_error:
            try:
                body = response.json()
                detail = body.get("detail", body) if isinstance(body, dict) else body
            except ValueError:
                detail = response.text
            raise self.error(response.status_code, detail)
        return response
