"""Clients with one interface: ``PsikClient`` (Psik-API over mutual TLS) and ``LocalPsik`` (in-process).

Both offer ``backends``, ``submit``, ``get``, ``list``, ``cancel``, ``logs`` and ``rerun`` and return
the models of ``psik.models``, so an Airflow hook or the transfer API can take either.
``AsyncPsikClient`` is the asynchronous twin of ``PsikClient`` (Airflow triggers poll with it); the two
send the requests described once in :class:`PsikCalls`.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx

from certified.service_client import (
    AsyncServiceClient,
    Call,
    ServiceClient,
    ServiceError,
    model_body,
    text_body,
)
from psik.config import load_config
from psik.manager import JobManager
from psik.models import BackendInfo, JobList, JobRecord, JobSpec, JobState, PsikConfig

Stream = Literal["stdout", "stderr"]


class PsikAPIError(ServiceError):
    """Psik-API answered with an error: ``status`` is the HTTP code, ``detail`` what it said."""

    service = "Psik-API"


def _spec(spec: JobSpec | dict[str, Any]) -> JobSpec:
    return spec if isinstance(spec, JobSpec) else JobSpec.model_validate(spec)


def _backends(response: httpx.Response) -> list[BackendInfo]:
    return [BackendInfo.model_validate(b) for b in response.json()]


class PsikCalls:
    """The requests of Psik-API's routes, and the models their answers are read into."""

    @staticmethod
    def backends() -> Call[list[BackendInfo]]:
        return Call("GET", "/v1/backends", _backends)

    @staticmethod
    def submit(spec: JobSpec | dict[str, Any]) -> Call[JobRecord]:
        return Call("POST", "/v1/jobs", model_body(JobRecord), json=_spec(spec).model_dump(mode="json", exclude_none=True))

    @staticmethod
    def get(jobid: str) -> Call[JobRecord]:
        return Call("GET", f"/v1/jobs/{jobid}", model_body(JobRecord))

    @staticmethod
    def list(state: JobState | str | None = None, limit: int = 100, offset: int = 0) -> Call[JobList]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state is not None:
            params["state"] = JobState(state).value
        return Call("GET", "/v1/jobs", model_body(JobList), params=params)

    @staticmethod
    def cancel(jobid: str) -> Call[JobRecord]:
        return Call("DELETE", f"/v1/jobs/{jobid}", model_body(JobRecord))

    @staticmethod
    def rerun(jobid: str) -> Call[JobRecord]:
        return Call("POST", f"/v1/jobs/{jobid}/rerun", model_body(JobRecord))

    @staticmethod
    def logs(jobid: str, stream: Stream = "stdout", jobndx: int | None = None, tail: int | None = None) -> Call[str]:
        params: dict[str, Any] = {"stream": stream}
        if jobndx is not None:
            params["jobndx"] = jobndx
        if tail is not None:
            params["tail"] = tail
        return Call("GET", f"/v1/jobs/{jobid}/logs", text_body, params=params)

    @staticmethod
    def file(jobid: str, path: str) -> Call[str]:
        return Call("GET", f"/v1/jobs/{jobid}/files", text_body, params={"path": path})


class PsikClient(ServiceClient):
    """Psik-API over mutual TLS: ``PsikClient(alias_or_url, certified_config_dir)``,
    ``PsikClient(url, tls=ClientTLS(...))`` or ``PsikClient(http=...)``."""

    error = PsikAPIError

    def __enter__(self) -> PsikClient:
        return self

    def backends(self) -> list[BackendInfo]:
        return self.send(PsikCalls.backends())

    def submit(self, spec: JobSpec | dict[str, Any]) -> JobRecord:
        return self.send(PsikCalls.submit(spec))

    def get(self, jobid: str) -> JobRecord:
        return self.send(PsikCalls.get(jobid))

    def list(self, state: JobState | str | None = None, limit: int = 100, offset: int = 0) -> JobList:
        return self.send(PsikCalls.list(state, limit, offset))

    def cancel(self, jobid: str) -> JobRecord:
        return self.send(PsikCalls.cancel(jobid))

    def rerun(self, jobid: str) -> JobRecord:
        return self.send(PsikCalls.rerun(jobid))

    def logs(self, jobid: str, stream: Stream = "stdout", jobndx: int | None = None,
             tail: int | None = None) -> str:
        return self.send(PsikCalls.logs(jobid, stream, jobndx, tail))

    def file(self, jobid: str, path: str) -> str:
        return self.send(PsikCalls.file(jobid, path))


class AsyncPsikClient(AsyncServiceClient):
    """The asynchronous twin of :class:`PsikClient`, for event loops (Airflow triggers)."""

    error = PsikAPIError

    async def __aenter__(self) -> AsyncPsikClient:
        return self

    async def backends(self) -> list[BackendInfo]:
        return await self.send(PsikCalls.backends())

    async def submit(self, spec: JobSpec | dict[str, Any]) -> JobRecord:
        return await self.send(PsikCalls.submit(spec))

    async def get(self, jobid: str) -> JobRecord:
        return await self.send(PsikCalls.get(jobid))

    async def list(self, state: JobState | str | None = None, limit: int = 100, offset: int = 0) -> JobList:
        return await self.send(PsikCalls.list(state, limit, offset))

    async def cancel(self, jobid: str) -> JobRecord:
        return await self.send(PsikCalls.cancel(jobid))

    async def logs(self, jobid: str, stream: Stream = "stdout", jobndx: int | None = None,
                   tail: int | None = None) -> str:
        return await self.send(PsikCalls.logs(jobid, stream, jobndx, tail))


class LocalPsik:
    """The same interface in-process, acting as ``user`` (None: the local operator, who sees every job;
    ``admin``: a user that sees every job too)."""

    def __init__(self, config: PsikConfig | None = None, user: str | None = None, admin: bool = False) -> None:
        self.manager = JobManager(config or load_config())
        self.user = user
        self.admin = admin

    def backends(self) -> list[BackendInfo]:
        return self.manager.backends(self.user, self.admin)

    def submit(self, spec: JobSpec | dict[str, Any]) -> JobRecord:
        return self.manager.submit(_spec(spec), self.user, self.admin)

    def get(self, jobid: str) -> JobRecord:
        return self.manager.get(jobid, self.user, self.admin)

    def list(self, state: JobState | str | None = None, limit: int = 100, offset: int = 0) -> JobList:
        return self.manager.list(self.user, JobState(state) if state else None, limit, offset, admin=self.admin)

    def cancel(self, jobid: str) -> JobRecord:
        return self.manager.cancel(jobid, self.user, self.admin)

    def rerun(self, jobid: str) -> JobRecord:
        return self.manager.rerun(jobid, self.user, self.admin)

    def logs(self, jobid: str, stream: Stream = "stdout", jobndx: int | None = None,
             tail: int | None = None) -> str:
        return self.manager.logs(jobid, self.user, stream, jobndx, tail, admin=self.admin)
