"""httpx clients bound to a service alias (or a literal URL), presenting this identity over mutual TLS.

The identity comes from a certified folder (``config_dir``), or is given explicitly as a
:class:`certified.material.ClientTLS` (file paths or PEM text, e.g. from an Airflow connection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from certified.errors import CertifiedError
from certified.material import ClientTLS
from certified.tls import client_context
from certified.trust import service, services


def resolve(alias_or_url: str, config_dir: str | Path | None = None) -> tuple[str, str | None]:
    """(base URL, alias) for an alias, or for a literal https URL (alias is the known service at that
    origin, if any, so its introduction is presented)."""
    if "://" not in alias_or_url:
        return service(alias_or_url, config_dir).url, alias_or_url
    parts = urlsplit(_https_url(alias_or_url))
    for alias, entry in services(config_dir).items():
        known = urlsplit(entry.url)
        if (known.scheme, known.hostname, known.port) == (parts.scheme, parts.hostname, parts.port):
            return alias_or_url, alias
    return alias_or_url, None


def _https_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise CertifiedError(f"URL {url!r} must be https://HOST[:PORT][/path]")
    return url


def _settings(alias_or_url: str, config_dir: str | Path | None, kwargs: dict[str, Any],
              tls: ClientTLS | None = None) -> dict[str, Any]:
    if tls is not None:  # explicit material: the URL is literal, the context made from the material
        settings: dict[str, Any] = {"base_url": _https_url(alias_or_url), "verify": tls.context(), "timeout": 30.0}
    else:
        base_url, alias = resolve(alias_or_url, config_dir)
        settings = {"base_url": base_url, "verify": client_context(config_dir, alias=alias), "timeout": 30.0}
    settings.update(kwargs)
    return settings


def client(alias_or_url: str, config_dir: str | Path | None = None, *, tls: ClientTLS | None = None,
           **httpx_kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose base_url is the service's URL, using mutual TLS with this identity
    (or, with ``tls``, with that explicit material; ``alias_or_url`` is then an https URL)."""
    return httpx.Client(**_settings(alias_or_url, config_dir, httpx_kwargs, tls))


def async_client(alias_or_url: str, config_dir: str | Path | None = None, *, tls: ClientTLS | None = None,
                 **httpx_kwargs: Any) -> httpx.AsyncClient:
    """The asynchronous twin of :func:`client`."""
    return httpx.AsyncClient(**_settings(alias_or_url, config_dir, httpx_kwargs, tls))
