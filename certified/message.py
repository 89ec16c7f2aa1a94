"""``certified message``: a curl-like HTTPS client that uses this identity and the service aliases."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from certified.cli_util import read_input
from certified.errors import CertifiedError
from certified.http import client

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass
class Request:
    base: str  # alias or https origin
    path: str
    method: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def split_target(target: str) -> tuple[str, str]:
    """'alias/path?q' -> ('alias', '/path?q'); 'https://h:p/path' -> ('https://h:p', '/path')."""
    if "://" in target:
        parts = urlsplit(target)
        if parts.scheme != "https" or not parts.netloc:
            raise CertifiedError(f"target {target!r} must be ALIAS/path or https://HOST:PORT/path")
        path = parts.path or "/"
        return f"https://{parts.netloc}", path + (f"?{parts.query}" if parts.query else "")
    alias, _, rest = target.partition("/")
    if not alias:
        raise CertifiedError(f"target {target!r} has no service alias before the first '/'")
    return alias, "/" + rest


def parse_headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise CertifiedError(f"header {value!r} must look like 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def build_request(target: str, method: str | None, data: str | None, json_file: str | None,
                  headers: list[str]) -> Request:
    base, path = split_target(target)
    hdrs = parse_headers(headers)
    body: bytes | None = None
    if json_file is not None and data is not None:
        raise CertifiedError("give either --json FILE or DATA, not both")
    if json_file is not None:
        raw = read_input(json_file, "--json")
        try:
            json.loads(raw)
        except ValueError as exc:
            raise CertifiedError(f"--json file {json_file!r} is not valid JSON: {exc}") from exc
        body = raw
        hdrs.setdefault("content-type", "application/json")
    elif data is not None:
        body = data.encode()
        try:
            json.loads(data)
            hdrs.setdefault("content-type", "application/json")
        except ValueError:
            hdrs.setdefault("content-type", "text/plain; charset=utf-8")
    verb = (method or ("POST" if body is not None else "GET")).upper()
    if verb not in METHODS:
        raise CertifiedError(f"method {method!r} is not one of {', '.join(METHODS)}")
    return Request(base=base, path=path, method=verb, body=body, headers=hdrs)


def send(request: Request, config_dir: str | Path | None = None, timeout: float = 30.0) -> int:
    """Send the request, print the (pretty) response body, return the exit status (1 on HTTP errors)."""
    try:
        with client(request.base, config_dir, timeout=timeout) as http:
            response = http.request(request.method, request.path, content=request.body, headers=request.headers)
    except httpx.HTTPError as exc:
        sys.stderr.write(f"certified message: cannot reach {request.base}{request.path}: {exc}\n")
        return 1
    text = response.text
    if "json" in response.headers.get("content-type", ""):
        try:
            text = json.dumps(response.json(), indent=2)
        except ValueError:
            pass
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if response.is_error:
        sys.stderr.write(f"certified message: HTTP {response.status_code} {response.reason_phrase}\n")
        return 1
    return 0
