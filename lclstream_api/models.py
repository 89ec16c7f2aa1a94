"""Pydantic models at the API boundary: what a client sends, what the service returns."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from buffer.status import BufferStatus
from lclstream_api.states import TransferState, Transition
from streamer.config import StreamerConfig

Identity = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]


class TransferOptions(BaseModel):
    """How the service runs one transfer (everything but what to stream, which the config says)."""

    model_config = ConfigDict(extra="forbid")

    ranks: int = Field(1, ge=1, le=1024, description="MPI ranks of the producer job (mpiexec -n)")
    backend: str = Field("default", min_length=1, description="Psi-k backend the producer job runs on")
    max_bytes: int = Field(256 * 2**20, ge=2**20, description="memory limit of the buffer, bytes")
    idle_timeout: float = Field(
        120.0, gt=0, le=86400,
        description="seconds to wait for the first producer and for the first consumer before failing")
    total_timeout: float | None = Field(None, gt=0, description="seconds after which the transfer fails")
    tls: bool = Field(
        True, description="protect the data stream: tls+tcp with certificates made for this transfer, so only "
                          "its producers push and only its owner and readers pull; false (plain tcp, not "
                          "encrypted, anyone who reaches the buffer may connect) only where the service allows it")
    readers: list[Identity] = Field(
        default_factory=list, max_length=64,
        description="identities besides the owner that may pull this transfer's data (GET .../credentials)")


class TransferRequest(BaseModel):
    """Body of ``POST /v1/transfers``: the streamer config (its data_handlers are replaced) and options."""

    model_config = ConfigDict(extra="forbid")

    config: StreamerConfig
    options: TransferOptions = Field(default_factory=TransferOptions)


class JobInfo(BaseModel):
    """One Psi-k job of a transfer (the buffer or the producers) as the service last saw it."""

    model_config = ConfigDict(extra="forbid")

    jobid: str
    state: str = "new"
    info: str = ""
    log_tail: list[str] = Field(default_factory=list)


class TransferRecord(BaseModel):
    """Everything the service keeps about a transfer (stored as JSON in SQLite)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    owner: str
    created: float
    updated: float
    state: TransferState
    reason: str = ""
    url: str
    recv_url: str
    ports: list[int]
    options: TransferOptions
    config: dict[str, Any]
    config_hash: str
    idempotency_key: str | None = None
    cb_secret: str
    log: list[Transition]
    jobs: dict[str, JobInfo] = Field(default_factory=dict)
    buffer_status: BufferStatus | None = None
    ports_released: bool = False

    @property
    def protected(self) -> bool:
        return self.url.startswith("tls+tcp://")


class TransferView(BaseModel):
    """What ``GET /v1/transfers/{id}`` returns: no secrets; live buffer metrics and job states."""

    model_config = ConfigDict(extra="forbid")

    id: str
    state: TransferState
    url: str
    owner: str
    created: float
    updated: float
    reason: str = ""
    config_hash: str
    options: TransferOptions
    protected: bool = Field(description="the data stream is tls+tcp with this transfer's own certificates; "
                                        "false: plain tcp, not encrypted, anyone who reaches the buffer may connect")
    log: list[Transition]
    jobs: dict[str, JobInfo]
    metrics: BufferStatus | None = Field(
        None, description="live buffer status: producers, consumers, received, sent, buffered, bytes, rates")

    @classmethod
    def of(cls, record: TransferRecord) -> TransferView:
        return cls(id=record.id, state=record.state, url=record.url, owner=record.owner,
                   created=record.created, updated=record.updated, reason=record.reason,
                   config_hash=record.config_hash, options=record.options, protected=record.protected,
                   log=record.log,
                   jobs=record.jobs, metrics=record.buffer_status)


class DataCredentials(BaseModel):
    """What ``GET /v1/transfers/{id}/credentials`` returns to the owner or a reader: how to pull the data.

    For a protected stream: the CA that signed the buffer's certificate, and a consumer certificate
    with its private key made for this caller just now. Any pynng peer uses them as they are::

        pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT, server_name=c.server_name, ca_string=c.ca_pem,
                        own_cert_string=c.cert_pem, own_key_string=c.key_pem)
    """

    model_config = ConfigDict(extra="forbid")

    transfer_id: str
    url: str = Field(description="where consumers pull (tls+tcp://HOST:PORT, or tcp:// when not protected)")
    protected: bool
    identity: str = Field(description="whom the consumer certificate names (the caller)")
    server_name: str | None = Field(None, description="the name the buffer's certificate carries (the url's host)")
    ca_pem: str | None = Field(None, description="PEM certificate of this transfer's CA")
    cert_pem: str | None = Field(None, description="PEM consumer certificate made for the caller")
    key_pem: str | None = Field(None, description="PEM private key of cert_pem (keep it private)")


class TransferList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transfers: list[TransferView]


def config_hash(config: StreamerConfig | dict[str, Any]) -> str:
    """Hash of what a config streams: everything but ``data_handlers``, which the service replaces.

    Two requests with the same hash ask for the same data, so a client cache can be keyed by it.
    """
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    data.pop("data_handlers", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
