"""Starting, stopping and reading the two Psi-k jobs of a transfer: the buffer and the MPI producers."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from lclstream_api.credentials import JobFiles
from lclstream_api.settings import ServiceConfig
from psik.accounts import give
from psik.jobdir import JobDir, TransitionRefused
from psik.manager import BackendForbidden, JobManager, UnknownBackend
from psik.models import JobSpec, PsikConfig, ResourceLimits, Resources

DEFAULT_TRANSFER_SECONDS = 24 * 3600  # how long the jobs of a transfer without total_timeout may run


@dataclass(frozen=True)
class JobSnapshot:
    state: str
    info: str
    log_tail: list[str]


def buffer_script(cfg: ServiceConfig, recv_url: str, send_url: str, status_file: Path, max_bytes: int,
                  idle_timeout: float, tls: JobFiles | None, producers: int) -> str:
    """The buffer waits for all ``producers`` ranks before it may drain (one rank may finish early).

    With ``tls`` it serves both sides over TLS with the transfer's own CA and admits only producer
    certificates on --recv and consumer certificates on --send."""
    args = [cfg.commands.nng_stream, "--recv", recv_url, "--send", send_url, "--producers", str(producers),
            "--max-bytes", str(max_bytes), "--max-message-size", str(cfg.max_message_size),
            "--idle-timeout", str(idle_timeout), "--status-file", str(status_file), "--report-interval", "1",
            "--callback", "$LCLSTREAM_BUFFER_CALLBACK"]  # the secret comes from $NNG_STREAM_CB_SECRET
    if tls is not None:
        args += ["--cert", str(tls.buffer_cert), "--key", str(tls.buffer_key), "--ca", str(tls.ca),
                 "--require-roles"]
    return _script(args)


def producer_script(cfg: ServiceConfig, config_file: Path, ranks: int) -> str:
    """``$mpirun`` is the backend's launcher (mpiexec locally, srun under SLURM), set by Psi-k."""
    return _script(["$mpirun", "-n", str(ranks), cfg.commands.lclstreamer, "-c", str(config_file)])


def _script(args: list[str]) -> str:
    quoted = [f'"{a}"' if a.startswith("$") else shlex.quote(a) for a in args]
    # "exec" so that a cancel (signal to the process group) reaches the program directly
    return "set -eu\nexec " + " ".join(quoted) + "\n"


def job_spec(name: str, script: str, backend: str, callback: str, secret: str, processes: int,
             duration_minutes: float, environment: dict[str, str] | None = None) -> JobSpec:
    """A Psi-k job whose state changes are posted, signed with ``secret``, to ``callback``."""
    return JobSpec(name=name, script=script, backend=backend, callback=callback, cb_secret=secret,
                   environment=environment or {},
                   resources=Resources(process_count=processes, duration=duration_minutes))


def job_minutes(total_timeout: float | None, max_minutes: float) -> float:
    """How long a transfer's jobs may run: its total_timeout plus a minute, or a day (at most what the
    backends take) without one."""
    if total_timeout is None:
        return min(DEFAULT_TRANSFER_SECONDS / 60 + 1, max_minutes)
    return total_timeout / 60 + 1


class PsikLauncher:
    """Runs transfer jobs through the Psi-k library on the service's own jobs prefix.

    Local jobs run under a detached supervisor, so they outlive a restart of the service; their
    state is read back from the job folders.
    """

    def __init__(self, config: PsikConfig, log_lines: int = 10) -> None:
        self.psik = JobManager(config)
        self.log_lines = log_lines

    def submit(self, spec: JobSpec, owner: str) -> str:
        try:
            return self.psik.submit(spec, user=owner).jobid
        except BackendForbidden as exc:
            raise PermissionError(str(exc)) from exc
        except UnknownBackend as exc:
            raise LookupError(str(exc)) from exc

    def check_owner(self, owner: str) -> None:
        """Raise PermissionError (a sentence for the caller) when ``owner`` has no OS account to run jobs, and
        ``psik.manager.Unreachable`` when that account cannot run this service's programs."""
        self.psik.check_reachable(self.psik.account_for(owner))

    def limits(self, backend: str) -> ResourceLimits:
        """What one job may ask of ``backend``, its longest duration filled in."""
        cfg = self.psik.backend_config(backend)
        return cfg.effective_limits().model_copy(update={"duration": cfg.max_duration()})

    def give_folder(self, folder: Path, owner: str) -> None:
        """Hand a folder the service prepared for ``owner``'s jobs to their OS account (mode 0700)."""
        give(folder, self.psik.account_for(owner))

    def check_backend(self, name: str, owner: str) -> None:
        """Raise PermissionError when ``owner`` may not use backend ``name`` (LookupError when unknown)."""
        try:
            self.psik.backend_config(name, owner)
        except BackendForbidden as exc:
            raise PermissionError(str(exc)) from exc
        except UnknownBackend as exc:
            raise LookupError(str(exc)) from exc

    def cancel(self, jobid: str) -> None:
        try:
            self.psik.cancel(jobid)
        except TransitionRefused:
            pass  # already finished

    def snapshot(self, jobid: str) -> JobSnapshot:
        """Current state of a job read from its folder (works across service restarts)."""
        rec = self.psik.get(jobid)
        job = JobDir.find(self.psik.prefix, jobid)
        lines = job.log_tail("stderr", rec.jobndx, self.log_lines) or \
            job.log_tail("stdout", rec.jobndx, self.log_lines)
        return JobSnapshot(rec.state.value, rec.info, lines)
