"""One folder per job, belonging to the job's OS account (mode 0700): spec, state, logs, work.

Layout::

    PREFIX/                       the service's (0711: jobs reach their folder, nobody lists the others)
    PREFIX/JOBID/                 the job's account, mode 0700
    PREFIX/JOBID/spec.json        the JobSpec, including the callback secret (mode 0600)
    PREFIX/JOBID/meta.json        owner identity, account and creation time
    PREFIX/JOBID/status.csv       time,jobndx,state,info  (one line per transition, appended under flock)
    PREFIX/JOBID/callbacks.csv    seq,time,jobndx,state,delivered,attempts,detail (psik.delivery)
    PREFIX/JOBID/native.N         backend job id of run N (process group or SLURM job id)
    PREFIX/JOBID/log/stdout.N     output of run N
    PREFIX/JOBID/log/stderr.N
    PREFIX/JOBID/work/            default working directory

The account runs the job, so it can change anything in its folder: every read and write of these
files goes through ``psik.safefs`` (no links followed, regular files of the folder's owner only),
and the account a job runs as is the folder's owner, not anything written in it.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

from psik import safefs
from psik.accounts import Account, by_uid, give
from psik.models import JOBID_PATTERN, CallbackDelivery, JobSpec, JobState, StatusEntry
from psik.paths import PathEscape, confine

Stream = Literal["stdout", "stderr"]
_FIELDS = ("time", "jobndx", "state", "info")
PREFIX_MODE = 0o711


class JobNotFound(LookupError):
    pass


class TransitionRefused(ValueError):
    """A state change that would go backwards or leave a finished run."""


def new_jobid() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


class JobDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- creation and lookup ------------------------------------------------------------------
    @classmethod
    def create(cls, prefix: Path, spec: JobSpec, owner: str, account: Account) -> JobDir:
        """Make the folder, its files and the script's working directory (``give_to`` then hands it over)."""
        make_prefix(prefix)
        jobid = new_jobid()
        path = prefix / jobid
        path.mkdir(mode=0o700)
        job = cls(path)
        (path / "log").mkdir(mode=0o700)
        (path / "work").mkdir(mode=0o700)
        try:
            job.workdir(spec).mkdir(parents=True, exist_ok=True, mode=0o700)
        except PathEscape:
            _remove_tree(path)
            raise
        _write_private(path / "spec.json", spec.model_dump_json(indent=1))
        _write_private(path / "meta.json", json.dumps({"owner": owner, "account": account.name,
                                                       "created": time.time()}))
        (path / "status.csv").touch(mode=0o600)
        (path / "callbacks.csv").touch(mode=0o600)
        return job

    def give_to(self, account: Account) -> None:
        """Hand the folder (made by the service, nothing in it yet run) to the job's account, mode 0700."""
        give(self.path, account)

    @classmethod
    def find(cls, prefix: Path, jobid: str) -> JobDir:
        if not re.match(JOBID_PATTERN, jobid):
            raise JobNotFound(f"no job {jobid!r}")
        job = cls(prefix / jobid)
        if not (job.path / "spec.json").is_file():
            raise JobNotFound(f"no job {jobid!r}")
        return job

    @classmethod
    def all(cls, prefix: Path) -> Iterator[JobDir]:
        if not prefix.is_dir():
            return
        for child in sorted(prefix.iterdir(), reverse=True):
            if (child / "spec.json").is_file():
                yield cls(child)

    # -- contents --------------------------------------------------------------------------------
    @property
    def jobid(self) -> str:
        return self.path.name

    def read(self, relative: str, limit: int | None = None) -> str:
        return safefs.read_text(self.path, relative, limit)

    def spec(self) -> JobSpec:
        return JobSpec.model_validate_json(self.read("spec.json"))

    def owner(self) -> str:
        return str(json.loads(self.read("meta.json"))["owner"])

    def folder_uid(self) -> int:
        return os.stat(self.path, follow_symlinks=False).st_uid

    def account(self) -> Account:
        """The account the job runs as: the folder's owner (the job cannot change that)."""
        return by_uid(self.folder_uid())

    def workdir(self, spec: JobSpec | None = None) -> Path:
        spec = spec or self.spec()
        return confine(self.path, spec.directory or "work", field="directory")

    def log_path(self, stream: Stream, jobndx: int) -> Path:
        return self.path / "log" / f"{stream}.{int(jobndx)}"

    def log_tail(self, stream: Stream, jobndx: int, lines: int) -> list[str]:
        """The last ``lines`` lines of a run's output (at most the last 64 KiB of it)."""
        text = safefs.read_tail(self.path, f"log/{stream}.{int(jobndx)}", 65536)
        return text.splitlines()[-lines:] if lines > 0 else []

    def set_native_id(self, jobndx: int, native: str) -> None:
        safefs.write_text(self.path, f"native.{int(jobndx)}", native)

    def native_id(self, jobndx: int) -> str | None:
        try:
            return self.read(f"native.{int(jobndx)}", 256).strip() or None
        except FileNotFoundError:
            return None

    # -- status.csv --------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        with safefs.open_file(self.path, "status.csv", "a+", create=True) as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield fh
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _parse(text: str) -> list[StatusEntry]:
        out = []
        for row in csv.reader(io.StringIO(text)):
            if len(row) != 4 or row[0] == "time":
                continue
            out.append(StatusEntry(time=float(row[0]), jobndx=int(row[1]), state=JobState(row[2]), info=row[3]))
        return out

    def history(self) -> list[StatusEntry]:
        with safefs.open_file(self.path, "status.csv", "r") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH)
            try:
                return self._parse(fh.read())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def current(self) -> StatusEntry | None:
        """The latest entry of the latest run."""
        hist = self.history()
        if not hist:
            return None
        last_ndx = max(e.jobndx for e in hist)
        return [e for e in hist if e.jobndx == last_ndx][-1]

    def append_status(self, jobndx: int, state: JobState, info: str = "", *,
                      new_run: bool = False) -> StatusEntry:
        """Append one transition under an exclusive lock. Refuses to go backwards or leave a finished run.

        ``new_run`` asks for the run index to be allocated here (latest + 1) atomically with the append.
        """
        state = JobState(state)
        with self._locked() as fh:
            fh.seek(0)
            hist = self._parse(fh.read())
            if new_run:
                latest = max((e.jobndx for e in hist), default=0)
                last = [e for e in hist if e.jobndx == latest]
                if last and not last[-1].state.terminal and last[-1].state is not JobState.NEW:
                    raise TransitionRefused(f"run {latest} is still {last[-1].state}; cancel it first")
                if last and last[-1].state is JobState.NEW:
                    latest -= 1  # the first run was created but never queued: it becomes run 1
                jobndx = latest + 1
            mine = [e for e in hist if e.jobndx == jobndx]
            if mine:
                cur = mine[-1].state
                if cur.terminal:
                    raise TransitionRefused(f"run {jobndx} already {cur}; not moving to {state}")
                if state.rank <= cur.rank:
                    raise TransitionRefused(f"run {jobndx} is {cur}; cannot go to {state}")
            entry = StatusEntry(time=time.time(), jobndx=jobndx, state=state, info=info)
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow(
                [f"{entry.time:.6f}", entry.jobndx, entry.state.value, entry.info])
            fh.seek(0, os.SEEK_END)
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
            return entry


    # -- callbacks.csv (written by psik.delivery) ---------------------------------------------------
    def deliveries(self) -> list[CallbackDelivery]:
        try:
            text = self.read("callbacks.csv")
        except FileNotFoundError:
            return []
        out = []
        for row in csv.reader(io.StringIO(text)):
            if len(row) == 7:
                out.append(CallbackDelivery(seq=int(row[0]), time=float(row[1]), jobndx=int(row[2]),
                                            state=JobState(row[3]), delivered=row[4] == "delivered",
                                            attempts=int(row[5]), detail=row[6]))
        return out


def make_prefix(prefix: Path) -> None:
    """The folder holding job folders: searchable by the jobs' accounts, listable by the service only."""
    if not prefix.is_dir():
        prefix.mkdir(parents=True, exist_ok=True, mode=PREFIX_MODE)
        os.chmod(prefix, PREFIX_MODE)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
