"""Psi-k as a library: submit, list, inspect, cancel, re-run and reconcile jobs under one prefix.

Used in-process by the CLI, by Psik-API and (as ``psik.client.LocalPsik``) by other services.
``user`` is the identity a call acts for: jobs belong to the user that submitted them and run as the
OS account the configuration maps that identity to (``psik.accounts``); other users see them as
missing unless the caller says they are an ``admin`` (Psik-API decides that from the trust entry that
vouched for the caller, never from a name alone). ``user=None`` means the local operator, who sees
all and whose jobs run as the account running this process. A job asking more of its backend than
the backend's ``limits`` allow is refused before anything is created.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from pathlib import Path

from psik import accounts, delivery
from psik.accounts import Account, NoAccount
from psik.backends import backend_for
from psik.backends.base import write_script
from psik.jobdir import JobDir, JobNotFound, Stream, TransitionRefused, make_prefix
from psik.models import (
    BackendConfig,
    BackendInfo,
    JobList,
    JobRecord,
    JobSpec,
    JobState,
    LimitExceeded,
    PsikConfig,
    Resources,
)
from psik.paths import PathEscape
from psik.safefs import open_file
from psik.transitions import reach

log = logging.getLogger("psik")
LOCAL_USER = "local"


class UnknownBackend(LookupError):
    pass


class BackendForbidden(PermissionError):
    pass


class LimitsExceeded(ValueError):
    """A job asks more than its backend allows; ``problems`` has one ``LimitExceeded`` per field."""

    def __init__(self, problems: list[LimitExceeded]) -> None:
        super().__init__("; ".join(f"resources.{p.field}: {p}" for p in problems))
        self.problems = problems


class Unreachable(RuntimeError):
    """The jobs folder or this Python cannot be reached by the account a job would run as (a service
    misconfiguration: install the service where every job account can run it)."""


class JobManager:
    def __init__(self, config: PsikConfig) -> None:
        self.config = config
        self._reachable: set[int] = set()  # accounts known to run this Python and reach the prefix

    @property
    def prefix(self) -> Path:
        return self.config.prefix

    # -- backends and accounts -----------------------------------------------------------------
    def backends(self, user: str | None = None, admin: bool = False) -> list[BackendInfo]:
        return [BackendInfo(name=name, type=b.type, queue_name=b.queue_name, project_name=b.project_name,
                            reservation_id=b.reservation_id, limits=b.effective_limits())
                for name, b in self.config.backends.items()
                if user is None or b.allows(user, admin)]

    def backend_config(self, name: str, user: str | None = None, admin: bool = False) -> BackendConfig:
        if name not in self.config.backends:
            raise UnknownBackend(f"backend {name!r} is not configured; known: {', '.join(sorted(self.config.backends))}")
        cfg = self.config.backends[name]
        if user is not None and not cfg.allows(user, admin):
            raise BackendForbidden(f"user {user!r} may not use backend {name!r}")
        return cfg

    def check_limits(self, backend: str, resources: Resources) -> None:
        """Raise ``LimitsExceeded`` when ``resources`` ask more than ``backend`` allows."""
        problems = self.backend_config(backend).effective_limits().exceeded(resources)
        if problems:
            raise LimitsExceeded([p.for_backend(backend) for p in problems])

    def account_for(self, user: str | None) -> Account:
        """The OS account ``user``'s jobs run as (``NoAccount`` when it has none); the operator's is ours."""
        return accounts.current() if user is None else accounts.account_for(user, self.config.accounts)

    def check_reachable(self, account: Account) -> None:
        """Raise ``Unreachable`` unless ``account`` can run this Python (the supervisor and the job-side
        ``psik`` commands use it) and reach the jobs folder; asked of the kernel once per account."""
        if account.uid in self._reachable:
            return
        make_prefix(self.prefix)
        problem = accounts.cannot_use(account, sys.executable, self.prefix)
        if problem is not None:
            raise Unreachable(f"{problem}; install the service where every job account can run it")
        self._reachable.add(account.uid)

    # -- jobs ----------------------------------------------------------------------------------
    def _job(self, jobid: str, user: str | None, admin: bool = False) -> JobDir:
        job = JobDir.find(self.prefix, jobid)
        if not self._visible(job, user, admin):
            raise JobNotFound(f"no job {jobid!r}")
        return job

    def _visible(self, job: JobDir, user: str | None, admin: bool = False) -> bool:
        if user is None or admin:
            return True
        if job.owner() != user:
            return False
        try:  # meta.json is in the job's own folder: believe it only when the folder is that user's account's
            return self.account_for(user).uid == job.folder_uid()
        except NoAccount:
            return False

    def record(self, job: JobDir) -> JobRecord:
        history = job.history()
        latest = max((e.jobndx for e in history), default=1)
        last = [e for e in history if e.jobndx == latest]
        cur = last[-1] if last else None
        spec = job.spec()
        done = job.deliveries()
        try:
            account: str | None = job.account().name
        except NoAccount:
            account = None
        return JobRecord(jobid=job.jobid, owner=job.owner(), account=account, spec=spec.public(), jobndx=latest,
                         state=cur.state if cur else JobState.NEW, info=cur.info if cur else "",
                         history=history, native_id=job.native_id(latest), callbacks=done,
                         callbacks_pending=delivery.pending_count(spec, history, done))

    def submit(self, spec: JobSpec, user: str | None = None, admin: bool = False) -> JobRecord:
        cfg = self.backend_config(spec.backend, user, admin)
        self.check_limits(spec.backend, spec.resources)
        account = self.account_for(user)
        self.check_reachable(account)
        job = JobDir.create(self.prefix, spec, user or LOCAL_USER, account)
        write_script(job, spec)
        job.give_to(account)
        reach(job, 1, JobState.NEW)
        self._start(job, spec, 1, cfg)
        return self.record(job)

    def _start(self, job: JobDir, spec: JobSpec, jobndx: int, cfg: BackendConfig) -> None:
        if jobndx == 1:
            reach(job, 1, JobState.QUEUED, f"backend {spec.backend}")
        backend_for(cfg.type).start(job, spec, jobndx, cfg, job.account())

    def get(self, jobid: str, user: str | None = None, admin: bool = False) -> JobRecord:
        job = self._job(jobid, user, admin)
        self._reconcile_job(job)
        return self.record(job)

    def list(self, user: str | None = None, state: JobState | None = None, limit: int = 100,
             offset: int = 0, admin: bool = False) -> JobList:
        records = []
        for job in JobDir.all(self.prefix):
            try:
                if not self._visible(job, user, admin):
                    continue
                rec = self.record(job)
            except (OSError, ValueError) as exc:  # a damaged folder must not hide the others
                log.warning("skipping job folder %s: %s", job.path, exc)
                continue
            if state is None or rec.state == state:
                records.append(rec)
        return JobList(jobs=records[offset:offset + limit], total=len(records))

    def cancel(self, jobid: str, user: str | None = None, admin: bool = False) -> JobRecord:
        job = self._job(jobid, user, admin)
        try:
            rec = self.record(job)
        except PathEscape:
            self._stop_tampered(job)
            raise

        if rec.state.terminal:
            raise TransitionRefused(f"job {jobid} run {rec.jobndx} already {rec.state}")
        spec = job.spec()
        cfg = self.config.backends.get(spec.backend)
        if reach(job, rec.jobndx, JobState.CANCELED, f"canceled by {user or LOCAL_USER}") is not None and cfg:
            backend_for(cfg.type).cancel(job, rec.jobndx, cfg)
        return self.record(job)

    def _stop_tampered(self, job: JobDir) -> None:
        """A job that broke its own records (links in place of psik's files) is still stopped when canceled."""
        log.warning("job %s: its folder was tampered with; stopping its runs without recording it", job.jobid)
        try:
            backends = [self.config.backends[job.spec().backend]]
        except (OSError, ValueError, KeyError):
            backends = list(self.config.backends.values())
        runs = [int(name.split(".", 1)[1]) for name in os.listdir(job.path)
                if name.startswith("native.") and name.split(".", 1)[1].isdigit()]
        for cfg in backends:
            for ndx in runs:
                try:
                    backend_for(cfg.type).cancel(job, ndx, cfg)  # each checks the run is the account's
                except (OSError, ValueError) as exc:
                    log.warning("job %s run %d: %s", job.jobid, ndx, exc)

    def rerun(self, jobid: str, user: str | None = None, admin: bool = False) -> JobRecord:
        """Run a finished job again, as the account that owns its folder, within today's limits."""
        job = self._job(jobid, user, admin)
        spec = job.spec()
        cfg = self.backend_config(spec.backend, user, admin)
        self.check_limits(spec.backend, spec.resources)
        entry = reach(job, 0, JobState.QUEUED, f"re-run on backend {spec.backend}", new_run=True, strict=True)
        assert entry is not None
        self._start(job, spec, entry.jobndx, cfg)
        return self.record(job)

    def logs(self, jobid: str, user: str | None = None, stream: Stream = "stdout", jobndx: int | None = None,
             tail: int | None = None, admin: bool = False) -> str:
        job = self._job(jobid, user, admin)
        ndx = jobndx if jobndx is not None else self.record(job).jobndx
        try:
            fh = open_file(job.path, f"log/{stream}.{int(ndx)}", "r")
        except FileNotFoundError:
            return ""
        with fh:
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
