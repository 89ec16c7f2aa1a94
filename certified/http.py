"""httpx clients bound to a service alias (or a literal URL), presenting this identity over mutual TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from certified.errors import CertifiedError
from certified.tls import client_context
from certified.trust import service, services


def resolve(alias_or_url: str, config_dir: str | Path | None = None) -> tuple[str, str | None]:
    """(base URL, alias) for an alias, or for a literal https URL (alias is the known service at that
    origin, if any, so its introduction is presented)."""
    if "://" not in alias_or_url:
        return service(alias_or_url, config_dir).url, alias_or_url
    parts = urlsplit(alias_or_url)
    if parts.scheme != "https" or not parts.hostname:
        raise CertifiedError(f"URL {alias_or_url!r} must be https://HOST[:PORT][/path]")
    for alias, entry in services(config_dir).items():
        known = urlsplit(entry.url)
        if (known.scheme, known.hostname, known.port) == (parts.scheme, parts.hostname, parts.port):
            return alias_or_url, alias
    return alias_or_url, None


def _settings(alias_or_url: str, config_dir: str | Path | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    base_url, alias = resolve(alias_or_url, config_dir)
    settings: dict[str, Any] = {"base_url": base_url, "verify": client_context(config_dir, alias=alias),
                                "timeout": 30.0}
    settings.update(kwargs)
    return settings


def client(alias_or_url: str, config_dir: str | Path | None = None, **httpx_kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose base_url is the service's URL, using mutual TLS with this identity."""
    return httpx.Client(**_settings(alias_or_url, config_dir, httpx_kwargs))


def async_client(alias_or_url: str, config_dir: str | Path | None = None,
                 **httpx_kwargs: Any) -> httpx.AsyncClient:
    """The asynchronous twin of :func:`client`."""
    return httpx.AsyncClient(**_settings(alias_or_url, config_dir, httpx_kwargs))
