"""The ELog service's one client library, and its local twin, with the same typed calls.

``ElogClient`` talks to ``lclstream-elog serve`` over mutual TLS (the CLI, the DAQ's ``--elog`` and the
Airflow ``ElogHook`` use it); ``LocalElog`` keeps the records in a local SQLite file through the service's
own ``RunStore``, for a DAQ run without a service. Both raise ``ElogError`` (status 404, 409, 422...)
so callers handle them alike.

    with ElogClient("elog") as elog:                       # a certified alias, or an https URL
        for record in elog.runs(experiment="mfxp1001121"):
            print(record.summary())
        elog.annotate("mfxp1001121", 12, "streamed to S3DF", body={"events": 3600})
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from certified.service_client import ServiceClient, ServiceError
from elog.records import Annotation, AnnotationIn, RunClose, RunList, RunOpen, RunRecord, RunState
from elog.store import STATUS_OF, RunConflict, RunNotFound, RunStore


class ElogError(ServiceError):
    """The ELog answered with an error: ``status`` is the HTTP code, ``detail`` what it said."""

    service = "ELog"


class RunRecords(Protocol):
    """What the CLI and the DAQ need of the run records, remote or local."""

    def runs(self, experiment: str | None = None, state: RunState | str | None = None,
             limit: int = 1000) -> list[RunRecord]: ...
    def get(self, experiment: str, run: int) -> RunRecord: ...
    def annotate(self, experiment: str, run: int, text: str, body: dict[str, Any] | None = None) -> Annotation: ...
    def open_run(self, request: RunOpen) -> RunRecord: ...
    def close_run(self, experiment: str, run: int, request: RunClose) -> RunRecord: ...
    def close(self) -> None: ...


class ElogClient(ServiceClient):
    """``ElogClient(alias_or_url, certified_config_dir)`` or ``ElogClient(http=httpx_client)``."""

    error = ElogError

    def __enter__(self) -> ElogClient:
        return self

    def runs(self, experiment: str | None = None, state: RunState | str | None = None,
             limit: int = 1000) -> list[RunRecord]:
        params: dict[str, Any] = {"limit": limit}
        if experiment is not None:
            params["experiment"] = experiment
        if state is not None:
            params["state"] = RunState(state).value
        return RunList.model_validate(self._request("GET", "/runs", params=params).json()).runs

    def get(self, experiment: str, run: int) -> RunRecord:
        return RunRecord.model_validate(self._request("GET", f"/runs/{experiment}/{run}").json())

    def annotate(self, experiment: str, run: int, text: str, body: dict[str, Any] | None = None) -> Annotation:
        note = {"text": text, "body": body}
        return Annotation.model_validate(
            self._request("POST", f"/runs/{experiment}/{run}/annotations", json=note).json())

    def open_run(self, request: RunOpen) -> RunRecord:
        body = request.model_dump(mode="json", exclude_none=True)
        return RunRecord.model_validate(self._request("POST", "/runs", json=body).json())

    def close_run(self, experiment: str, run: int, request: RunClose) -> RunRecord:
        body = request.model_dump(mode="json", exclude_none=True)
        return RunRecord.model_validate(self._request("POST", f"/runs/{experiment}/{run}/close", json=body).json())


def _as_error(exc: Exception) -> ElogError:
    if type(exc) in STATUS_OF:
        return ElogError(STATUS_OF[type(exc)], str(exc))
    assert isinstance(exc, ValidationError)
    return ElogError(422, [{"loc": list(err["loc"]), "msg": err["msg"]} for err in exc.errors()])


class LocalElog:
    """The same calls on a local SQLite file, acting as ``user`` (default: the login name)."""

    def __init__(self, path: Path, user: str | None = None) -> None:
        self.store = RunStore(path)
        self.user = user or getpass.getuser()

    def __enter__(self) -> LocalElog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    def runs(self, experiment: str | None = None, state: RunState | str | None = None,
             limit: int = 1000) -> list[RunRecord]:
        return self.store.list(experiment, RunState(state) if state is not None else None, limit)

    def get(self, experiment: str, run: int) -> RunRecord:
        try:
            return self.store.get(experiment, run)
        except RunNotFound as exc:
            raise _as_error(exc) from None

    def annotate(self, experiment: str, run: int, text: str, body: dict[str, Any] | None = None) -> Annotation:
        try:
            return self.store.annotate(experiment, run, AnnotationIn(text=text, body=body), author=self.user)
        except (RunNotFound, ValidationError) as exc:
            raise _as_error(exc) from None

    def open_run(self, request: RunOpen) -> RunRecord:
        try:
            return self.store.open_run(request, opened_by=self.user)
        except RunConflict as exc:
            raise _as_error(exc) from None

    def close_run(self, experiment: str, run: int, request: RunClose) -> RunRecord:
        try:
            return self.store.close_run(experiment, run, request)
        except (RunNotFound, RunConflict) as exc:
            raise _as_error(exc) from None
