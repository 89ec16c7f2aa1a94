"""Pydantic models at every Psi-k boundary: job specs, backend configs and their limits, accounts,
states, job records and callback deliveries."""

from __future__ import annotations

import os
import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from certified.config_paths import ConfigPath
from certified.request_guard import DEFAULT_MAX_BODY

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
JOBID_PATTERN = r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$"
ACCOUNT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$"  # an OS login name
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOCAL_PROCESSES_PER_CPU = 8  # a local backend without limits.process_count allows this many per CPU
RESERVED_ENV = frozenset({"jobid", "jobndx", "base", "mpirun", "nodes"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class JobState(StrEnum):
    NEW = "new"
    QUEUED = "queued"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def rank(self) -> int:
        return _RANK[self]


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELED})
_RANK = {JobState.NEW: 0, JobState.QUEUED: 1, JobState.ACTIVE: 2,
         JobState.COMPLETED: 3, JobState.FAILED: 3, JobState.CANCELED: 3}


MAX_DURATION = 60 * 24 * 30  # minutes: no backend runs a job longer than 30 days


class Resources(Strict):
    """What one run of a job needs. ``duration`` is the wall-time limit in minutes."""

    duration: float = Field(default=10.0, gt=0, le=MAX_DURATION)
    node_count: int = Field(default=1, ge=1, le=100_000)
    process_count: int = Field(default=1, ge=1, le=10_000_000)
    processes_per_node: int | None = Field(default=None, ge=1, le=100_000)
    cpu_cores_per_process: int = Field(default=1, ge=1, le=4096)
    gpu_cores_per_process: int = Field(default=0, ge=0, le=64)
    exclusive_node_use: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Resources:
        if self.processes_per_node is not None and self.processes_per_node * self.node_count < self.process_count:
            raise ValueError(
                f"processes_per_node ({self.processes_per_node}) x node_count ({self.node_count}) "
                f"is less than process_count ({self.process_count})")
        return self


class JobSpec(Strict):
    """What a user asks for. ``directory`` is relative to the job folder (default ``work``)."""

    name: str = Field(default="job", pattern=NAME_PATTERN)
    directory: str | None = Field(default=None, min_length=1, max_length=4096)
    script: str = Field(min_length=1, max_length=1_000_000)
    environment: dict[str, str] = Field(default_factory=dict)
    inherit_environment: bool = True
    resources: Resources = Field(default_factory=Resources)
    backend: str = Field(default="default", pattern=NAME_PATTERN)
    attributes: dict[str, str] = Field(default_factory=dict)
    callback: str | None = Field(default=None, pattern=r"^https?://[^\s]+$", max_length=2048)
    cb_secret: str | None = Field(default=None, min_length=1, max_length=4096)

    @field_validator("environment")
    @classmethod
    def _env_keys(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if not _ENV_KEY.match(key):
                raise ValueError(f"environment variable name {key!r} is not a shell identifier")
            if key in RESERVED_ENV:
                raise ValueError(f"environment variable {key!r} is set by psik; reserved: {sorted(RESERVED_ENV)}")
        return env

    def public(self) -> JobSpec:
        """A copy without the callback secret, safe to show."""
        return self.model_copy(update={"cb_secret": None})


class ResourceLimits(Strict):
    """The most one job may ask of a backend (None: only the model's own bounds); same names as Resources."""

    duration: float | None = Field(default=None, gt=0, le=MAX_DURATION, description="minutes")
    node_count: int | None = Field(default=None, ge=1)
    process_count: int | None = Field(default=None, ge=1)
    processes_per_node: int | None = Field(default=None, ge=1)
    cpu_cores_per_process: int | None = Field(default=None, ge=1)
    gpu_cores_per_process: int | None = Field(default=None, ge=0)

    def exceeded(self, resources: Resources) -> list[LimitExceeded]:
        """Every field of ``resources`` above its limit, in field order."""
        out = []
        for name in type(self).model_fields:
            limit, value = getattr(self, name), getattr(resources, name)
            if limit is not None and value is not None and value > limit:
                out.append(LimitExceeded(name, value, limit))
        return out


class LimitExceeded(ValueError):
    """A job asks for more than its backend allows: ``field`` of Resources, its ``value`` and the ``limit``."""

    def __init__(self, field: str, value: float, limit: float, backend: str = "") -> None:
        where = f"backend {backend!r}" if backend else "this backend"
        super().__init__(f"{value:.10g} is more than {where} allows ({limit:.10g})")
        self.field, self.value, self.limit, self.backend = field, value, limit, backend

    def for_backend(self, backend: str) -> LimitExceeded:
        return LimitExceeded(self.field, self.value, self.limit, backend)


class BackendConfig(Strict):
    """One backend, defined in the server-side config only."""

    type: Literal["local", "slurm"] = "local"
    queue_name: str | None = None
    project_name: str | None = None
    reservation_id: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    users: list[str] | None = Field(
        default=None, description="certificate names allowed to use this backend; null means everyone")
    mpirun: str | None = Field(default=None, description="command the job sees as $mpirun")
    limits: ResourceLimits = Field(
        default_factory=ResourceLimits,
        description="the most one job may ask for; a local backend allows at most "
                    f"{LOCAL_PROCESSES_PER_CPU} processes per CPU unless limits.process_count says otherwise")

    def allows(self, user: str, admin: bool = False) -> bool:
        return self.users is None or user in self.users or admin

    def effective_limits(self) -> ResourceLimits:
        """The configured limits, with the local backend's default bound on processes filled in."""
        if self.type == "local" and self.limits.process_count is None:
            return self.limits.model_copy(
                update={"process_count": LOCAL_PROCESSES_PER_CPU * (os.cpu_count() or 1)})
        return self.limits

    def max_duration(self) -> float:
        """The longest run (minutes) this backend takes."""
        return self.limits.duration or MAX_DURATION


def default_backends() -> dict[str, BackendConfig]:
    return {"default": BackendConfig(type="local")}


class PsikConfig(Strict):
    prefix: ConfigPath = Field(description="folder of the job folders; relative to the config file's folder")
    backends: dict[str, BackendConfig] = Field(default_factory=default_backends)
    admins: list[str] = Field(
        default_factory=list, description="identities that see every job (only names the server's own CA signed)")
    accounts: dict[str, str] | None = Field(
        default=None,
        description="certificate identity -> OS account its jobs run as; unset: only the identity named like "
                    "the account the service runs as, which its jobs run as")
    poll_interval: float = Field(default=10.0, gt=0, description="seconds between SLURM reconciliations")
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY, ge=1024, le=1 << 30,
                                description="Psik-API answers 413 to larger request bodies")

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, accounts: dict[str, str] | None) -> dict[str, str] | None:
        for name, login in (accounts or {}).items():
            if not name or len(name) > 255:
                raise ValueError(f"identity {name!r} must be 1-255 characters")
            if not re.match(ACCOUNT_PATTERN, login):
                raise ValueError(f"account {login!r} for identity {name!r} is not an OS login name")
        return accounts

    @field_validator("backends")
    @classmethod
    def _names(cls, backends: dict[str, BackendConfig]) -> dict[str, BackendConfig]:
        for name in backends:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"backend name {name!r} must match {NAME_PATTERN}")
        if not backends:
            raise ValueError("at least one backend is needed")
        return backends


class StatusEntry(Strict):
    time: float
    jobndx: int
    state: JobState
    info: str = ""


class BackendInfo(Strict):
    name: str
    type: str
    queue_name: str | None = None
    project_name: str | None = None
    reservation_id: str | None = None
    limits: ResourceLimits = Field(default_factory=ResourceLimits)


class CallbackDelivery(Strict):
    """The outcome of posting one state change (``seq``: its line in the job's history) to the callback URL."""

    seq: int
    time: float
    jobndx: int
    state: JobState
    delivered: bool
    attempts: int
    detail: str = ""


class JobRecord(Strict):
    """What Psi-k tells about a job: its spec without the secret, owner and state history."""

    jobid: str
    owner: str
    account: str | None = Field(default=None, description="OS account the job runs as")
    spec: JobSpec
    jobndx: int
    state: JobState
    info: str = ""
    history: list[StatusEntry]
    native_id: str | None = None
    callbacks: list[CallbackDelivery] = Field(
        default_factory=list, description="state changes posted to the callback URL, delivered or failed")
    callbacks_pending: int = Field(default=0, description="state changes not yet posted")


class JobList(Strict):
    jobs: list[JobRecord]
    total: int
