"""The ELog service: run records over HTTPS, served under certified mutual TLS (``lclstream-elog serve``).

Every caller is a certificate identity. Anyone the service's CA introduced may read runs and annotate
them (the author is the caller's name, never a field of the body); only the config's ``writers`` (the
DAQ's identity, introduced by the service's own CA) may open and close runs, others get 403 and a log line saying who and why. Unknown runs
are 404, bad bodies and paths 422 with field paths, a change that does not fit the run's state 409.
Error answers have ``certified.api_errors``' shape (field paths, never the input echoed back); oversized
and non-finite bodies are refused by ``certified.serve`` before the app sees them. The OpenAPI document is
at ``/openapi.json`` (and ``/docs``).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request

from certified.api_errors import answer_with_status, install_error_handlers
from certified.fastapi import Caller, caller
from elog.events import NAME_PATTERN
from elog.records import MAX_RUN, Annotation, AnnotationIn, RunClose, RunList, RunOpen, RunRecord, RunState
from elog.store import STATUS_OF, RunStore

log = logging.getLogger("elog.service")

Who = Annotated[Caller, Depends(caller)]
Experiment = Annotated[str, Path(pattern=NAME_PATTERN, description="experiment name, e.g. mfxp1001121")]
RunNumber = Annotated[int, Path(ge=0, le=MAX_RUN, description="run number")]


def create_app(store: RunStore, writers: list[str]) -> FastAPI:
    allowed = frozenset(writers)
    app = FastAPI(title="LCLStream ELog", version="1",
                  description="Run records of the facility: runs opened and closed by the DAQ, annotations "
                              "by people and workflows. Mutual TLS; writers open and close runs.")
    install_error_handlers(app)

    def writer(who: Who, request: Request) -> Caller:
        if not who.is_admin(allowed):  # a listed name, signed by the service's own CA (as admins are)
            log.warning("refused %s %s from %s: not one of the writers (%s)", request.method, request.url.path,
                        who.name, ", ".join(sorted(allowed)) or "none configured")
            raise HTTPException(status_code=403, detail=f"{who.name} may not open or close runs: only the "
                                                        "service's writers may")
        return who

    as_writer = Depends(writer)  # a default, not an annotation: annotations are strings and cannot see locals

    answer_with_status(app, STATUS_OF)

    @app.get("/runs", response_model=RunList, summary="Runs, newest first")
    def list_runs(_who: Who, experiment: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
                  state: RunState | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> RunList:
        return RunList(runs=store.list(experiment, state, limit))

    @app.post("/runs", response_model=RunRecord, status_code=201, summary="Open a run (writers only)",
              responses={403: {"description": "the caller is not a writer"},
                         409: {"description": "the run exists already"}})
    def open_run(body: RunOpen, who: Caller = as_writer) -> RunRecord:
        record = store.open_run(body, opened_by=who.name)
        log.info("run %s opened by %s (%s, run_dir %s)", record.key, who.name, record.instrument, record.run_dir)
        return record

    @app.get("/runs/{experiment}/{run}", response_model=RunRecord, summary="One run with its annotations",
             responses={404: {"description": "no such run"}})
    def get_run(experiment: Experiment, run: RunNumber, _who: Who) -> RunRecord:
        return store.get(experiment, run)

    @app.post("/runs/{experiment}/{run}/close", response_model=RunRecord, summary="Close a run (writers only)",
              responses={403: {"description": "the caller is not a writer"}, 404: {"description": "no such run"},
                         409: {"description": "closed already, with other figures"}})
    def close_run(experiment: Experiment, run: RunNumber, body: RunClose, who: Caller = as_writer) -> RunRecord:
        before = store.get(experiment, run).state
        record = store.close_run(experiment, run, body)
        if before == RunState.OPEN:
            log.info("run %s closed by %s: %d events in %d files", record.key, who.name, record.event_count or 0,
                     len(record.files))
        return record

    @app.post("/runs/{experiment}/{run}/annotations", response_model=Annotation, status_code=201,
              summary="Annotate a run (the author is the caller)", responses={404: {"description": "no such run"}})
    def annotate(experiment: Experiment, run: RunNumber, body: AnnotationIn, who: Who) -> Annotation:
        annotation = store.annotate(experiment, run, body, author=who.name)
        log.info("run %s/%d annotated by %s (annotation %d)", experiment, run, who.name, annotation.id)
        return annotation

    return app
