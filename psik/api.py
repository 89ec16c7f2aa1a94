"""Psik-API: the REST face of Psi-k, served under certified mutual TLS.

Jobs belong to the certificate identity (common name) that submitted them; other callers get 404
for them, the config's ``admins`` see all. Backends listing ``users`` refuse others with 403.
Error answers have ``certified.api_errors``' shape (field paths, never the input echoed back).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from certified.api_errors import error_response, field_error, install_error_handlers, quoted
from certified.fastapi import Caller, caller
from psik.jobdir import JobDir, JobNotFound, TransitionRefused
from psik.manager import BackendForbidden, JobManager, UnknownBackend
from psik.models import JOBID_PATTERN, BackendInfo, JobList, JobRecord, JobSpec, JobState, PsikConfig
from psik.paths import PathEscape, confine

log = logging.getLogger("psik.api")
HIDDEN_FILES = frozenset({"spec.json", "meta.json"})
MAX_FILE_BYTES = 16 * 2**20

Who = Annotated[Caller, Depends(caller)]


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


def create_app(config: PsikConfig) -> FastAPI:
    manager = JobManager(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=_reconcile_loop, args=(manager, stop), name="psik-reconcile", daemon=True)
        thread.start()
        log.info("psik-api: jobs under %s, backends %s", config.prefix, ", ".join(config.backends))
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    app = FastAPI(title="Psik-API", version="1", lifespan=lifespan,
                  description="One folder per job; local and SLURM backends; signed state callbacks.")
    app.state.manager = manager
    install_error_handlers(app)

    @app.exception_handler(JobNotFound)
    async def _not_found(request: Request, exc: JobNotFound) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(PathEscape)
    async def _escape(request: Request, exc: PathEscape) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(BackendForbidden)
    async def _forbidden(request: Request, exc: BackendForbidden) -> JSONResponse:
        return error_response(403, str(exc))

    @app.exception_handler(UnknownBackend)
    async def _unknown_backend(request: Request, exc: UnknownBackend) -> JSONResponse:
        return error_response(422, [field_error(["body", "backend"], str(exc), "unknown_backend")])

    @app.exception_handler(TransitionRefused)
    async def _conflict(request: Request, exc: TransitionRefused) -> JSONResponse:
        return error_response(409, str(exc))

    @app.get("/v1/backends", response_model=list[BackendInfo])
    def backends(who: Who) -> list[BackendInfo]:
        return manager.backends(who.name)

    @app.post("/v1/jobs", response_model=JobRecord, status_code=201)
    def submit(spec: JobSpec, who: Who) -> JobRecord:
        rec = manager.submit(spec, who.name)
        log.info("job %s submitted by %s on %s", rec.jobid, who.name, spec.backend)
        return rec

    @app.get("/v1/jobs", response_model=JobList)
    def list_jobs(who: Who, state: JobState | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                  offset: Annotated[int, Query(ge=0)] = 0) -> JobList:
        return manager.list(who.name, state, limit, offset)

    @app.get("/v1/jobs/{jobid}", response_model=JobRecord)
    def get_job(jobid: JobId, who: Who) -> JobRecord:
        return manager.get(jobid, who.name)

    @app.delete("/v1/jobs/{jobid}", response_model=JobRecord)
    def cancel(jobid: JobId, who: Who) -> JobRecord:
        return manager.cancel(jobid, who.name)

    @app.post("/v1/jobs/{jobid}/rerun", response_model=JobRecord)
    def rerun(jobid: JobId, who: Who) -> JobRecord:
        return manager.rerun(jobid, who.name)

    @app.get("/v1/jobs/{jobid}/logs", response_class=PlainTextResponse)
    def logs(jobid: JobId, who: Who, stream: Literal["stdout", "stderr"] = "stdout",
             jobndx: Annotated[int | None, Query(ge=1)] = None,
             tail: Annotated[int | None, Query(ge=1, le=1_000_000)] = None) -> str:
        return manager.logs(jobid, who.name, stream, jobndx, tail)

    @app.get("/v1/jobs/{jobid}/files", response_class=PlainTextResponse)
    def read_file(jobid: JobId, who: Who, path: Annotated[str, Query(min_length=1, max_length=4096)]) -> str:
        """A text file inside the job folder (e.g. ``work/result.txt``); paths may not leave it."""
        manager.get(jobid, who.name)  # ownership
        job = JobDir.find(config.prefix, jobid)
        target = confine(job.path, path, field="path")
        if target.relative_to(job.path.resolve()).as_posix() in HIDDEN_FILES:
            raise HTTPException(status_code=400, detail=f"path: {quoted(path)} is private to psik")
        if not target.is_file():
            raise HTTPException(status_code=404, detail=f"path: no file {quoted(path)} in job {jobid}")
        if target.stat().st_size > MAX_FILE_BYTES:
            raise HTTPException(status_code=413, detail=f"path: {quoted(path)} is larger than {MAX_FILE_BYTES} bytes")
        return target.read_text(errors="replace")

    return app
