"""Psi-k as a library: submit, list, inspect, cancel, re-run and reconcile jobs under one prefix.

Used in-process by the CLI, by Psik-API and (as ``psik.client.LocalPsik``) by other services.
``user`` is the identity a call acts for: jobs belong to the user that submitted them; other users
see them as missing unless they are admins. ``user=None`` means the local operator, who sees all.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

from psik.backends import backend_for
from psik.backends.base import write_script
from psik.jobdir import JobDir, JobNotFound, Stream, TransitionRefused
from psik.models import BackendConfig, BackendInfo, JobList, JobRecord, JobSpec, JobState, PsikConfig
from psik.transitions import reach

log = logging.getLogger("psik")
LOCAL_USER = "local"


class UnknownBackend(LookupError):
    pass


class BackendForbidden(PermissionError):
    pass


class JobManager:
    def __init__(self, config: PsikConfig) -> None:
        self.config = config

    @property
    def prefix(self) -> Path:
        return self.config.prefix

    # -- backends ------------------------------------------------------------------------------
    def backends(self, user: str | None = None) -> list[BackendInfo]:
        return [BackendInfo(name=name, type=b.type, queue_name=b.queue_name, project_name=b.project_name,
                            reservation_id=b.reservation_id)
                for name, b in self.config.backends.items()
                if user is None or b.allows(user, self.config.admins)]

    def backend_config(self, name: str, user: str | None = None) -> BackendConfig:
        if name not in self.config.backends:
            raise UnknownBackend(f"backend {name!r} is not configured; known: {', '.join(sorted(self.config.backends))}")
        cfg = self.config.backends[name]
        if user is not None and not cfg.allows(user, self.config.admins):
            raise BackendForbidden(f"user {user!r} may not use backend {name!r}")
        return cfg

    # -- jobs ----------------------------------------------------------------------------------
    def _job(self, jobid: str, user: str | None) -> JobDir:
        job = JobDir.find(self.prefix, jobid)
        if not self._visible(job, user):
            raise JobNotFound(f"no job {jobid!r}")
        return job

    def _visible(self, job: JobDir, user: str | None) -> bool:
        return user is None or user in self.config.admins or job.owner() == user

    def record(self, job: JobDir) -> JobRecord:
        history = job.history()
        latest = max((e.jobndx for e in history), default=1)
        last = [e for e in history if e.jobndx == latest]
        cur = last[-1] if last else None
        return JobRecord(jobid=job.jobid, owner=job.owner(), spec=job.spec().public(), jobndx=latest,
                         state=cur.state if cur else JobState.NEW, info=cur.info if cur else "",
                         history=history, native_id=job.native_id(latest))

    def submit(self, spec: JobSpec, user: str | None = None) -> JobRecord:
        cfg = self.backend_config(spec.backend, user)
        job = JobDir.create(self.prefix, spec, user or LOCAL_USER)
        write_script(job, spec)
        reach(job, 1, JobState.NEW)
        self._start(job, spec, 1, cfg)
        return self.record(job)

    def _start(self, job: JobDir, spec: JobSpec, jobndx: int, cfg: BackendConfig) -> None:
        if jobndx == 1:
            reach(job, 1, JobState.QUEUED, f"backend {spec.backend}")
        backend_for(cfg.type).start(job, spec, jobndx, cfg)

    def get(self, jobid: str, user: str | None = None) -> JobRecord:
        job = self._job(jobid, user)
        self._reconcile_job(job)
        return self.record(job)

    def list(self, user: str | None = None, state: JobState | None = None, limit: int = 100,
             offset: int = 0) -> JobList:
        records = []
        for job in JobDir.all(self.prefix):
            try:
                if not self._visible(job, user):
                    continue
                rec = self.record(job)
            except (OSError, ValueError) as exc:  # a damaged folder must not hide the others
                log.warning("skipping job folder %s: %s", job.path, exc)
                continue
            if state is None or rec.state == state:
                records.append(rec)
        return JobList(jobs=records[offset:offset + limit], total=len(records))

    def cancel(self, jobid: str, user: str | None = None) -> JobRecord:
        job = self._job(jobid, user)
        rec = self.record(job)
        if rec.state.terminal:
            raise TransitionRefused(f"job {jobid} run {rec.jobndx} already {rec.state}")
        spec = job.spec()
        cfg = self.config.backends.get(spec.backend)
        if reach(job, rec.jobndx, JobState.CANCELED, f"canceled by {user or LOCAL_USER}") is not None and cfg:
            backend_for(cfg.type).cancel(job, rec.jobndx, cfg)
        return self.record(job)

    def rerun(self, jobid: str, user: str | None = None) -> JobRecord:
        job = self._job(jobid, user)
        spec = job.spec()
        cfg = self.backend_config(spec.backend, user)
        entry = reach(job, 0, JobState.QUEUED, f"re-run on backend {spec.backend}", new_run=True, strict=True)
        assert entry is not None
        self._start(job, spec, entry.jobndx, cfg)
        return self.record(job)

    def logs(self, jobid: str, user: str | None = None, stream: Stream = "stdout", jobndx: int | None = None,
             tail: int | None = None) -> str:
        job = self._job(jobid, user)
        ndx = jobndx if jobndx is not None else self.record(job).jobndx
        path = job.log_path(stream, ndx)
        if not path.is_file():
            return ""
        with open(path, errors="replace") as fh:
            if tail is None:
                return fh.read()
            return "".join(deque(fh, maxlen=tail))

    # -- reconciliation ------------------------------------------------------------------------
    def _reconcile_job(self, job: JobDir) -> None:
        cur = job.current()
        if cur is None or cur.state.terminal or cur.state is JobState.NEW:
            return
        cfg = self.config.backends.get(job.spec().backend)
        if cfg is not None:
            backend_for(cfg.type).reconcile(job, cur.jobndx, cfg)

    def reconcile(self) -> int:
        """Check every unfinished job against its backend; returns how many were checked."""
        checked = 0
        for job in JobDir.all(self.prefix):
            try:
                self._reconcile_job(job)
                checked += 1
            except (OSError, ValueError) as exc:
                log.warning("reconcile %s: %s", job.path, exc)
        return checked
