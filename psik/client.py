"""Clients with one interface: ``PsikClient`` (Psik-API over mutual TLS) and ``LocalPsik`` (in-process).

Both offer ``backends``, ``submit``, ``get``, ``list``, ``cancel``, ``logs`` and ``rerun`` and return
the models of ``psik.models``, so an Airflow hook or the transfer API can take either.
"""

from __future__ import annotations

from typing import Any, Literal

from certified.service_client import ServiceClient, ServiceError
from psik.config import load_config
from psik.manager import JobManager
from psik.models import BackendInfo, JobList, JobRecord, JobSpec, JobState, PsikConfig

Stream = Literal["stdout", "stderr"]


class PsikAPIError(ServiceError):
    """Psik-API answered with an error: ``status`` is the HTTP code, ``detail`` what it said."""

    service = "Psik-API"


def _spec(spec: JobSpec | dict[str, Any]) -> JobSpec:
    return spec if isinstance(spec, JobSpec) else JobSpec.model_validate(spec)


class PsikClient(ServiceClient):
    """Psik-API over mutual TLS: ``PsikClient(alias_or_url, certified_config_dir)`` or ``PsikClient(http=...)``."""

    error = PsikAPIError

    def __enter__(self) -> PsikClient:
        return self

    def backends(self) -> list[BackendInfo]:
        return [BackendInfo.model_validate(b) for b in self._request("GET", "/v1/backends").json()]

    def submit(self, spec: JobSpec | dict[str, Any]) -> JobRecord:
        body = _spec(spec).model_dump(mode="json", exclude_none=True)
        return JobRecord.model_validate(self._request("POST", "/v1/jobs", json=body).json())

    def get(self, jobid: str) -> JobRecord:
        return JobRecord.model_validate(self._request("GET", f"/v1/jobs/{jobid}").json())

    def list(self, state: JobState | str | None = None, limit: int = 100, offset: int = 0) -> JobList:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state is not None:
            params["state"] = JobState(state).value
        return JobList.model_validate(self._request("GET", "/v1/jobs", params=params).json())

    def cancel(self, jobid: str) -> JobRecord:
        return JobRecord.model_validate(self._request("DELETE", f"/v1/jobs/{jobid}").json())

    def rerun(self, jobid: str) -> JobRecord:
        return JobRecord.model_validate(self._request("POST", f"/v1/jobs/{jobid}/rerun").json())

    def logs(self, jobid: str, stream: Stream = "stdout", jobndx: int | None = None,
             tail: int | None = None) -> str:
        params: dict[str, Any] = {"stream": stream}
        if jobndx is not None:
            params["jobndx"] = jobndx
        if tail is not None:
            params["tail"] = tail
        return self._request("GET", f"/v1/jobs/{jobid}/logs", params=params).text

    def file(self, jobid: str, path: str) -> str:
        return self._request("GET", f"/v1/jobs/{jobid}/files", params={"path": path}).text


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
