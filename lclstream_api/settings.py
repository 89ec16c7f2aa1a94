"""The service's own configuration (a YAML file given to ``lclstream-api --config``).

Example (every key but ``state_dir`` has a default)::

    listen: https://0.0.0.0:8443            # the mutual-TLS API
    callback_listen: http://127.0.0.1:8444  # loopback only: signed callbacks from buffers and jobs
    state_dir: /var/lib/lclstream-api       # transfers.sqlite, per-transfer files, Psi-k jobs
    certified_config: /etc/certified/lclstream-api
    public_host: 203.0.113.10               # consumers pull from tcp://public_host:PORT
    bind_host: 0.0.0.0                      # the buffers listen here
    port_pool: {start: 20000, end: 20999}   # two ports per running transfer
    admins: [operator]                      # see every transfer (names the service's own CA signed only)
    accounts: {alice: alice, alice-lab/anna: anna}   # identity -> OS account its jobs run as
    limits: {concurrent_per_user: 4, max_ranks: 64}
    backends:                               # Psi-k backends; users choose with options.backend
      default: {type: local}
      s3df: {type: slurm, queue_name: milano, project_name: lcls, mpirun: srun,
             limits: {process_count: 512, duration: 2880}}   # options.ranks / total_timeout above: 422
    buffer_backend: default                 # buffers run on the data transfer node itself
    max_message_size: 256M                  # a buffer disconnects a producer announcing a larger message
    allow_plain_tcp: false                  # true on a trusted network only: options.tls=false gives tcp://
    max_body_bytes: 1048576                 # larger request bodies get 413

Data streams are tls+tcp with certificates made for each transfer (``lclstream_api.credentials``);
the former ``data_tls`` service identity is no longer used.

Paths (``state_dir``, ``certified_config``, ``jobs_prefix``, commands given with a folder) are
resolved once, at load: relative to this file's folder, ``~`` expanded. Declare any new path setting
as ``ConfigPath`` and it is resolved the same way.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from buffer.config import parse_size
from certified.config_paths import ConfigCommand, ConfigPath, absolute, file_context
from certified.request_guard import DEFAULT_MAX_BODY
from psik.jobdir import PREFIX_MODE
from psik.models import BackendConfig, PsikConfig, default_backends


class SettingsError(ValueError):
    """The service config file is missing or invalid; ``errors`` lists (field path, message)."""

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class PortPoolConfig(BaseModel):
    """Ports the buffers of running transfers listen on (two per transfer), returned when it ends."""

    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=1024, le=65535)
    end: int = Field(ge=1024, le=65535)

    @model_validator(mode="after")
    def _ordered(self) -> PortPoolConfig:
        if self.end < self.start + 1:
            raise ValueError(f"port_pool.end ({self.end}) must be at least start + 1 ({self.start + 1})")
        return self


class LimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    concurrent_per_user: int = Field(4, ge=1, description="running transfers one user may have at once")
    max_ranks: int = Field(64, ge=1, description="largest `ranks` a request may ask for")


class CommandsConfig(BaseModel):
    """Executables the jobs run; default to the ones installed beside this Python."""

    model_config = ConfigDict(extra="forbid")

    nng_stream: ConfigCommand = Field(default_factory=lambda: _beside_python("nng-stream"))
    lclstreamer: ConfigCommand = Field(default_factory=lambda: _beside_python("lclstreamer"))


def _beside_python(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name) or name


class ServiceConfig(BaseModel):
    """Configuration of one LCLStream-API instance."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    listen: str = Field("https://127.0.0.1:8443", description="URL the mutual-TLS API is served on")
    callback_listen: str = Field(
        "http://127.0.0.1:8444",
        description="loopback-only plain-HTTP listener for signed buffer/job callbacks")
    state_dir: ConfigPath = Field(description="SQLite database and per-transfer files live here")
    certified_config: ConfigPath | None = Field(None, description="certified config dir of the service identity")
    jobs_prefix: ConfigPath | None = Field(None, description="Psi-k jobs folder (default: STATE_DIR/jobs)")
    backends: dict[str, BackendConfig] = Field(
        default_factory=default_backends, description="Psi-k backends the jobs may run on")
    buffer_backend: str = Field("default", description="Psi-k backend the buffers run on (a local one)")
    allowed_backends: list[str] | None = Field(
        None, description="producer backends users may ask for; None: any the Psi-k config has")
    port_pool: PortPoolConfig = Field(default_factory=lambda: PortPoolConfig(start=20000, end=20999))
    public_host: str = Field("127.0.0.1", description="host name consumers use to reach the buffers")
    bind_host: str = Field("127.0.0.1", description="address the buffers listen on")
    admins: list[str] = Field(default_factory=list, description="identities that see every transfer "
                              "(only names the service's own CA signed: the trust entry grants it, never a name)")
    accounts: dict[str, str] | None = Field(
        None, description="certificate identity -> OS account the transfer's jobs run as (Psi-k's `accounts`); "
                          "unset: only the identity named like the service's own account may request transfers")
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    max_message_size: int = Field(
        256 * 2**20, ge=2**20,
        description="largest message a transfer's buffer accepts (bytes, or e.g. 256M); a producer announcing a "
                    "larger one is disconnected before anything is allocated for it")
    allow_plain_tcp: bool = Field(
        False, description="let requests ask for options.tls=false: a plain tcp:// stream, not encrypted, that "
                           "anyone who reaches the buffer's ports may read or write. For trusted networks only")
    commands: CommandsConfig = Field(default_factory=CommandsConfig)
    poll_interval: float = Field(1.0, gt=0, le=60, description="seconds between reconciliations")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY, ge=1024, le=1 << 30,
                                description="request bodies over this many bytes get 413")

    @field_validator("callback_listen")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        host, _port = split_listen(value, "http")
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"callback_listen must be a loopback address (it is unauthenticated TLS-less "
                             f"HTTP guarded only by signatures), got {host!r}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_data_tls(cls, data: Any) -> Any:
        if isinstance(data, dict) and "data_tls" in data:
            raise ValueError("data_tls is no longer used: each transfer's data stream gets a CA and certificates "
                             "made for it; remove data_tls from the service config")
        return data

    @field_validator("max_message_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("listen")
    @classmethod
    def _https(cls, value: str) -> str:
        split_listen(value, "https")
        return value

    @model_validator(mode="after")
    def _backends_known(self) -> ServiceConfig:
        if self.buffer_backend not in self.backends:
            raise ValueError(f"buffer_backend {self.buffer_backend!r} is not one of backends: {sorted(self.backends)}")
        unknown = sorted(set(self.allowed_backends or []) - set(self.backends))
        if unknown:
            raise ValueError(f"allowed_backends names unknown backends {unknown}; known: {sorted(self.backends)}")
        return self

    def psik_config(self) -> PsikConfig:
        """Psi-k's config for this service's jobs; its paths are absolute (jobs run in their own folders)."""
        return PsikConfig(prefix=absolute(self.jobs_prefix or self.state_dir / "jobs"), backends=self.backends,
                          admins=self.admins, accounts=self.accounts)

    def prepare_state_dir(self) -> None:
        """The state folder and its transfers folder: searchable by the jobs' accounts (which reach their
        own folders inside), listable by the service only; the database readable by the service only."""
        for folder in (self.state_dir, self.state_dir / "transfers"):
            folder.mkdir(parents=True, exist_ok=True, mode=PREFIX_MODE)
            os.chmod(folder, PREFIX_MODE)
        if not self.db_path.exists():
            os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(self.db_path, 0o600)  # SQLite gives its -wal and -shm files the database's mode

    @property
    def db_path(self) -> Path:
        return self.state_dir / "transfers.sqlite"

    def callback_url(self, kind: str, transfer_id: str) -> str:
        host, port = split_listen(self.callback_listen, "http")
        return f"http://{host}:{port}/v1/callbacks/{kind}?transfer={transfer_id}"


def split_listen(url: str, scheme: str) -> tuple[str, int]:
    prefix = f"{scheme}://"
    if not url.startswith(prefix):
        raise ValueError(f"must look like {prefix}HOST:PORT, got {url!r}")
    host, sep, port = url[len(prefix):].rstrip("/").rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"must look like {prefix}HOST:PORT, got {url!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"host must be an IP address, got {host!r}") from exc
    return host, int(port)


def load_settings(source: str | Path | dict[str, Any]) -> ServiceConfig:
    """Load and validate a service config from a YAML file or a dict.

    Relative paths in a file are taken from the file's folder; in a dict, from the current directory.
    """
    context = None
    if isinstance(source, dict):
        data: Any = source
    else:
        path = Path(source)
        if not path.is_file():
            raise SettingsError(f"service config file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"service config {str(path)!r} is not valid YAML: {exc}") from exc
        context = file_context(path)
    if not isinstance(data, dict):
        raise SettingsError("service config must be a mapping of settings")
    try:
        return ServiceConfig.model_validate(data, context=context)
    except ValidationError as exc:
        errors = [(".".join(str(p) for p in e["loc"]) or "(top)", e["msg"]) for e in exc.errors()]
        text = "; ".join(f"{path}: {msg}" for path, msg in errors)
        raise SettingsError(f"invalid service config: {text}", errors) from exc
