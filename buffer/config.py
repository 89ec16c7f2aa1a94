"""Configuration of one buffer: the model the CLI builds and that other services can build directly.

File paths (the status file, the TLS certificate, key and CA) are made absolute once, here, with ``~``
expanded, relative to the directory the buffer was started in: what it logs at start is what it uses.
"""

from __future__ import annotations

import os
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

NNG_SCHEMES = ("tcp", "tcp4", "tcp6", "tls+tcp", "ipc", "inproc", "ws", "wss")
ZMQ_SCHEMES = ("tcp", "ipc", "inproc")


def _check_url(url: str, schemes: tuple[str, ...]) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ValueError(f"{url!r} is not a URL: expected scheme://address, e.g. tcp://127.0.0.1:5555")
    if scheme not in schemes:
        raise ValueError(f"{url!r} has scheme {scheme!r}; allowed: {', '.join(schemes)}")
    if scheme in ("ipc", "inproc"):
        if not rest:
            raise ValueError(f"{url!r} has no path after {scheme}://")
        return url
    try:
        port = urlsplit(url).port
    except ValueError as exc:
        raise ValueError(f"{url!r} has a bad port: {exc}") from None
    host = urlsplit(url).hostname
    if not host:
        raise ValueError(f"{url!r} has no host; use e.g. {scheme}://127.0.0.1:5555 (or * to listen on all)")
    if port is None and scheme != "ws" and scheme != "wss":
        raise ValueError(f"{url!r} has no port; use e.g. {scheme}://{host}:5555")
    return url


def check_nng_url(url: str) -> str:
    return _check_url(url, NNG_SCHEMES)


def check_zmq_url(url: str) -> str:
    return _check_url(url, ZMQ_SCHEMES)


def parse_size(text: str) -> int:
    """Bytes from ``268435456``, ``256M``, ``1G`` or ``512KiB`` (powers of 1024); ValueError otherwise."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    scale = units.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in units else t
    try:
        return int(float(number) * scale)
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not a size (e.g. 256M, 1G, 1048576)") from None


def url_host(url: str) -> str | None:
    """The host part of a tcp-like URL (used as the TLS server name when dialling)."""
    return urlsplit(url).hostname


NngUrl = Annotated[str, AfterValidator(check_nng_url)]
ZmqUrl = Annotated[str, AfterValidator(check_zmq_url)]


def absolute_path(path: str) -> str:
    """``path`` with ``~`` expanded, made absolute against the current directory."""
    return os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(path)))


LocalPath = Annotated[str, AfterValidator(absolute_path)]


CB_SECRET_ENV = "NNG_STREAM_CB_SECRET"  # a secret taken from the environment stays out of `ps` listings

class TLSFiles(BaseModel):
    """PEM files for mutual TLS: this side's certificate and key, and the CA every peer must be signed by."""

    model_config = ConfigDict(extra="forbid")

    cert: LocalPath
    key: LocalPath
    ca: LocalPath

    @model_validator(mode="after")
    def _files_exist(self) -> TLSFiles:
        for name in ("cert", "key", "ca"):
            path = getattr(self, name)
            if not os.path.isfile(path):
                raise ValueError(f"TLS {name} file {path!r} does not exist")
        return self


class BufferConfig(BaseModel):
    """Everything one ``nng-stream`` process needs."""

    model_config = ConfigDict(extra="forbid")

    recv: NngUrl = Field(description="where producers push (Pull0 side)")
    send: NngUrl | None = Field(default=None, description="where consumers pull (Push0 side)")
    send_zmq: ZmqUrl | None = Field(default=None, description="ZeroMQ PUSH output instead of --send")
    recv_dial: bool = Field(default=False, description="dial --recv instead of listening on it")
    send_dial: bool = Field(default=False, description="dial --send instead of listening on it")
    tls: TLSFiles | None = None
    max_bytes: int = Field(default=1 << 30, gt=0, description="buffered bytes before producers are blocked")
    max_messages: int = Field(default=100_000, gt=0, description="buffered messages before producers block")
    max_message_size: int = Field(
        default=1 << 30, ge=0,
        description="largest message accepted; a producer announcing a larger one is disconnected before "
                    "anything is allocated for it. 0 = no limit (a message the buffer cannot hold still "
                    "only disconnects its producer)")
    require_roles: bool = Field(
        default=False,
        description="tls+tcp sides admit only peers whose certificate carries the side's role: "
                    "OU=producer on recv, OU=consumer on send")
    direct_wait: float = Field(
        default=0.05, ge=0,
        description="seconds a message may wait in its producer's connection for a free consumer, which then "
                    "receives it straight from that connection (tcp/ipc on both sides); after that the buffer "
                    "copies it into memory. 0 copies every message (pure store and forward)")
    producers: int = Field(default=0, ge=0,
                           description="producers to expect before draining may start (0 = any number)")
    idle_timeout: float | None = Field(default=None, gt=0, description="seconds to wait for a first producer")
    end_timeout: float = Field(default=30.0, gt=0,
                               description="seconds to wait for consumers to take their end marker")
    report_interval: float = Field(default=5.0, gt=0)
    status_file: LocalPath | None = None
    callback: str | None = None
    cb_secret: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> BufferConfig:
        if (self.send is None) == (self.send_zmq is None):
            raise ValueError("give exactly one output: send (nng Push0) or send_zmq (ZeroMQ PUSH)")
        if self.send_zmq is not None and self.send_dial:
            raise ValueError("send_dial applies to the nng output only, not to send_zmq")
        urls = [self.recv] + ([self.send] if self.send else [])
        uses_tls = any(u.startswith("tls+tcp://") for u in urls)
        if uses_tls and self.tls is None:
            raise ValueError("a tls+tcp:// URL needs cert, key and ca")
        if self.tls is not None and not uses_tls:
            raise ValueError("cert/key/ca were given but no URL uses tls+tcp://")
        if self.require_roles and not uses_tls:
            raise ValueError("require_roles checks certificates, so it needs a tls+tcp:// URL")
        if self.cb_secret is not None and self.callback is None:
            raise ValueError("cb_secret was given without a callback URL")
        if self.callback is not None:
            scheme = urlsplit(self.callback).scheme
            if scheme not in ("http", "https"):
                raise ValueError(f"callback {self.callback!r} must be an http:// or https:// URL")
        if self.send is not None and self.send == self.recv:
            raise ValueError("recv and send must be different addresses")
        return self
