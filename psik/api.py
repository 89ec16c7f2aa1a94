"""Psik-API: the REST face of Psi-k, served under certified mutual TLS.

Callers are certificate identities whose issuer vouched for their name (``certified.serve``). Each
must map to an OS account (the config's ``accounts``; single-user default: the service's own login
name); anyone else gets 403 on every route, logged. Jobs belong to the identity that submitted them
and run as its account; other callers get 404 for them. The config's ``admins`` see all, but only
when the service's own CA vouched for them. Backends listing ``users`` refuse others with 403; a job
above its backend's ``limits`` gets 422 naming the field.
Error answers have ``certified.api_errors``' shape (field paths, never the input echoed back).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import PurePosixPath
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict

from certified.api_errors import (
    answer_with_status,
    error_response,
    field_error,
    install_error_handlers,
    quoted,
)
from certified.fastapi import Caller, caller
from psik import accounts, safefs
from psik.accounts import NoAccount
from psik.jobdir import JobDir, JobNotFound, TransitionRefused
from psik.manager import BackendForbidden, JobManager, LimitsExceeded, UnknownBackend, Unreachable
from psik.models import JOBID_PATTERN, BackendInfo, JobList, JobRecord, JobSpec, JobState, PsikConfig
from psik.paths import PathEscape

log = logging.getLogger("psik.api")
HIDDEN_FILES = frozenset({"spec.json", "meta.json"})
MAX_FILE_BYTES = 16 * 2**20


class User(BaseModel):
    """A caller Psik-API serves: its identity, its OS account, and whether it may see every job."""

    model_config = ConfigDict(frozen=True)

    name: str
    account: str
    admin: bool


def user(request: Request, who: Annotated[Caller, Depends(caller)]) -> User:
    """The caller, if it has an OS account here (403 and a log line otherwise)."""
    manager: JobManager = request.app.state.manager
    try:
        account = manager.account_for(who.name)
    except NoAccount as exc:
        log.warning("refused %s (trusted as %s) %s %s: %s", who.name, who.vouched_by, request.method,
                    request.url.path, exc)
        raise HTTPException(status_code=403, detail=str(exc)) from None
    return User(name=who.name, account=account.name, admin=who.is_admin(manager.config.admins))


Who = Annotated[User, Depends(user)]


def check_jobid(jobid: str) -> str:
    if not re.match(JOBID_PATTERN, jobid):
        raise HTTPException(status_code=400, detail=f"jobid {quoted(jobid)} is not a job id (expected {JOBID_PATTERN})")
    return jobid


JobId = Annotated[str, Depends(check_jobid)]


def _reconcile_loop(manager: JobManager, stop: threading.Event) -> None:
    while not stop.wait(manager.config.poll_interval):
        try:
            manager.reconcile()
        except Exception:  # the loop must survive any one bad pass
            log.exception("reconcile pass failed")


def _describe_accounts(config: PsikConfig) -> str:
    table = accounts.mapping(config.accounts)
    shown = ", ".join(f"{k} -> {v}" for k, v in list(table.items())[:10]) + (" ..." if len(table) > 10 else "")
    kind = "configured" if config.accounts is not None else "single-user default"
    return f"{len(table)} identit{'y' if len(table) == 1 else 'ies'} with OS accounts ({kind}): {shown}"


def create_app(config: PsikConfig) -> FastAPI:
    manager = JobManager(config)


    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=_reconcile_loop, args=(manager, stop), name="psik-reconcile", daemon=True)
        thread.start()
        log.info("psik-api: jobs under %s, backends %s", config.prefix, ", ".join(config.backends))
        log.info("psik-api: %s", _describe_accounts(config))
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    app = FastAPI(title="Psik-API", version="1", lifespan=lifespan,
                  description="One folder per job; local and SLURM backends; signed state callbacks.")
    app.state.manager = manager
    install_error_handlers(app)
    answer_with_status(app, {JobNotFound: 404, PathEscape: 400, BackendForbidden: 403, TransitionRefused: 409})

    @app.exception_handler(UnknownBackend)
    async def _unknown_backend(request: Request, exc: UnknownBackend) -> JSONResponse:
        return error_response(422, [field_error(["body", "backend"], str(exc), "unknown_backend")])

    @app.exception_handler(NoAccount)
    async def _no_account(request: Request, exc: NoAccount) -> JSONResponse:
        log.warning("refused %s %s: %s", request.method, request.url.path, exc)
        return error_response(403, str(exc))

    @app.exception_handler(LimitsExceeded)
    async def _limits(request: Request, exc: LimitsExceeded) -> JSONResponse:
        return error_response(422, [field_error(["body", "resources", p.field], str(p), "limit_exceeded")
                                    for p in exc.problems])

    @app.exception_handler(Unreachable)
    async def _unreachable(request: Request, exc: Unreachable) -> JSONResponse:
        log.error("%s", exc)
        return error_response(503, f"this service is misconfigured: {exc}")

    @app.get("/v1/backends", response_model=list[BackendInfo])
    def backends(who: Who) -> list[BackendInfo]:
        return manager.backends(who.name, who.admin)

    @app.post("/v1/jobs", response_model=JobRecord, status_code=201)
    def submit(spec: JobSpec, who: Who) -> JobRecord:
        rec = manager.submit(spec, who.name, who.admin)
        log.info("job %s submitted by %s on %s, runs as %s", rec.jobid, who.name, spec.backend, rec.account)
        return rec

    @app.get("/v1/jobs", response_model=JobList)
    def list_jobs(who: Who, state: JobState | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                  offset: Annotated[int, Query(ge=0)] = 0) -> JobList:
        return manager.list(who.name, state, limit, offset, admin=who.admin)

    @app.get("/v1/jobs/{jobid}", response_model=JobRecord)
    def get_job(jobid: JobId, who: Who) -> JobRecord:
        return manager.get(jobid, who.name, who.admin)

    @app.delete("/v1/jobs/{jobid}", response_model=JobRecord)
    def cancel(jobid: JobId, who: Who) -> JobRecord:
        return manager.cancel(jobid, who.name, who.admin)

    @app.post("/v1/jobs/{jobid}/rerun", response_model=JobRecord)
    def rerun(jobid: JobId, who: Who) -> JobRecord:
        return manager.rerun(jobid, who.name, who.admin)

    @app.get("/v1/jobs/{jobid}/logs", response_class=PlainTextResponse)
    def logs(jobid: JobId, who: Who, stream: Literal["stdout", "stderr"] = "stdout",
             jobndx: Annotated[int | None, Query(ge=1)] = None,
             tail: Annotated[int | None, Query(ge=1, le=1_000_000)] = None) -> str:
        return manager.logs(jobid, who.name, stream, jobndx, tail, admin=who.admin)

    @app.get("/v1/jobs/{jobid}/files", response_class=PlainTextResponse)
    def read_file(jobid: JobId, who: Who, path: Annotated[str, Query(min_length=1, max_length=4096)]) -> str:
        """A text file inside the job folder (e.g. ``work/result.txt``); paths may not leave it nor use links."""
        manager.get(jobid, who.name, who.admin)  # ownership
        job = JobDir.find(config.prefix, jobid)
        if PurePosixPath(path).as_posix() in HIDDEN_FILES:
            raise HTTPException(status_code=400, detail=f"path: {quoted(path)} is private to psik")
        try:
            fh = safefs.open_file(job.path, path, "r", field="path")
        except (FileNotFoundError, IsADirectoryError):
            raise HTTPException(status_code=404, detail=f"path: no file {quoted(path)} in job {jobid}") from None
        with fh:
            text = fh.read(MAX_FILE_BYTES + 1)
        if len(text) > MAX_FILE_BYTES:
            raise HTTPException(status_code=413, detail=f"path: {quoted(path)} is larger than {MAX_FILE_BYTES} bytes")
        return text

    return app
