"""SLURM backend: render an sbatch script, submit with --parsable, cancel with scancel, reconcile.

A service running as root submits as the job's account (``sbatch --uid/--gid``), so the whole job runs
with that account's rights; the script goes to sbatch on its standard input, never read back from the
account's folder. The rendered script checks that the user's script can start and reports ``active``
(``psik started``: else failed, naming the missing or non-executable file) and its end (``psik
ended``: completed, or failed with the exit code and last error line) itself, and posts its callbacks with ``psik deliver``
in the background while the user's script runs. A run killed by SLURM (time limit, node failure,
scancel from outside) cannot report, so :func:`reconcile` asks ``scontrol``/``sacct`` how it ended and
records that, with the reason.
"""

from __future__ import annotations

import logging
import math
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from psik import accounts, safefs
from psik.accounts import Account
from psik.backends.base import job_variables, script_command
from psik.jobdir import JobDir
from psik.models import BackendConfig, JobSpec, JobState
from psik.transitions import reach

log = logging.getLogger("psik")

COMMAND_TIMEOUT = 30.0
ALIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
                   "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"})
REASONS = {"TIMEOUT": "time limit reached", "NODE_FAIL": "node failure", "BOOT_FAIL": "node failed to boot",
           "OUT_OF_MEMORY": "out of memory", "DEADLINE": "deadline passed", "PREEMPTED": "preempted",
           "REVOKED": "revoked", "SPECIAL_EXIT": "special exit"}


class SlurmError(RuntimeError):
    pass


def format_time(minutes: float) -> str:
    """SLURM's minutes:seconds form, rounded up to whole seconds."""
    seconds = max(1, math.ceil(minutes * 60))
    return f"{seconds // 60}:{seconds % 60:02d}"


def sbatch_directives(spec: JobSpec, config: BackendConfig, job: JobDir, jobndx: int) -> list[str]:
    r = spec.resources
    lines = [
        f"--job-name=psik-{spec.name}",
        f"--nodes={r.node_count}",
        f"--ntasks={r.process_count}",
        f"--cpus-per-task={r.cpu_cores_per_process}",
        f"--time={format_time(r.duration)}",
        f"--output={job.log_path('stdout', jobndx)}",
        f"--error={job.log_path('stderr', jobndx)}",
        f"--chdir={job.workdir(spec)}",
        "--export=ALL" if spec.inherit_environment else "--export=NONE",
    ]
    if r.processes_per_node is not None:
        lines.append(f"--ntasks-per-node={r.processes_per_node}")
    if r.gpu_cores_per_process:
        lines.append(f"--gpus-per-task={r.gpu_cores_per_process}")
    if r.exclusive_node_use:
        lines.append("--exclusive")
    if config.queue_name:
        lines.append(f"--partition={config.queue_name}")
    if config.project_name:
        lines.append(f"--account={config.project_name}")
    if config.reservation_id:
        lines.append(f"--reservation={config.reservation_id}")
    return ["#SBATCH " + line for line in lines]


def render_script(job: JobDir, spec: JobSpec, jobndx: int, config: BackendConfig,
                  account: Account | None = None) -> str:
    q = shlex.quote
    psik = f"{q(sys.executable)} -m psik.cli -v --prefix {q(str(job.path.parent))}"
    variables = job_variables(job, jobndx, config.mpirun or "srun", "${SLURM_JOB_NUM_NODES:-1}")
    who = accounts.environment(account) if account is not None and not account.is_current else {}
    exports = [f"export {k}={q(v)}" for k, v in {**who, **spec.environment}.items()]
    exports += [f"export {k}={q(v)}" for k, v in variables.items() if k != "nodes"]
    exports.append('export nodes="${SLURM_JOB_NUM_NODES:-1}"')
    job_ref = f"{q(job.jobid)} {jobndx}"
    plog = q(str(job.path / "log" / f"psik.{jobndx}"))
    return "\n".join([
        "#!/bin/bash",
        *sbatch_directives(spec, config, job, jobndx),
        "# rendered by psik: reports its own state; runs killed by SLURM are reconciled from scontrol/sacct",
        *exports,
        f'if ! {psik} started --no-deliver {job_ref} "slurm job $SLURM_JOB_ID on $SLURM_JOB_NODELIST" >>{plog} 2>&1; then',
        f"  {psik} deliver {q(job.jobid)} >>{plog} 2>&1; exit 1  # cannot start (recorded as failed, saying why)",
        "fi",
        f"{psik} deliver {q(job.jobid)} >>{plog} 2>&1 &  # callbacks go out while the script runs",
        "psik_deliver=$!",
        " ".join(q(a) for a in script_command(job, spec)),
        "rc=$?",
        f"{psik} ended --no-deliver {job_ref} $rc >>{plog} 2>&1  # rc >= 128: killed; read from SLURM",
        'wait "$psik_deliver"',
        f"{psik} deliver {q(job.jobid)} >>{plog} 2>&1",
        "exit $rc",
        "",
    ])


def submit_as(account: Account) -> list[str]:
    """sbatch options that make the job run as ``account`` (none when it is the service's own)."""
    return [] if account.is_current else [f"--uid={account.uid}", f"--gid={account.gid}"]


def _run(argv: list[str], stdin: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL, env=env)


@dataclass(frozen=True)
class SlurmJobState:
    state: str  # e.g. RUNNING, TIMEOUT, CANCELLED
    reason: str = ""
    exit_code: str = ""
    uid: int | None = None  # the job's owner, from scontrol's UserId=name(uid)


def _uid(user_id: str) -> int | None:
    inside = user_id.rpartition("(")[2].rstrip(")")
    return int(inside) if inside.isdigit() else None


def query_scontrol(native: str) -> SlurmJobState | None:
    """The job as slurmctld still remembers it (MinJobAge after its end), or None."""
    out = _run(["scontrol", "-o", "show", "job", native])
    if out.returncode != 0 and "invalid job id" not in out.stderr.lower():
        raise SlurmError(f"scontrol show job {native}: {out.stderr.strip()[:300]}")
    if out.returncode != 0 or "JobState=" not in out.stdout:
        return None
    fields = dict(tok.split("=", 1) for tok in out.stdout.split() if "=" in tok)
    return SlurmJobState(fields.get("JobState", "UNKNOWN"), fields.get("Reason", ""), fields.get("ExitCode", ""),
                         _uid(fields.get("UserId", "")))


def query_sacct(native: str) -> SlurmJobState | None:
    """The job from accounting, when accounting storage is configured; None otherwise."""
    out = _run(["sacct", "-n", "-X", "-P", "-j", native, "-o", "State,Reason,ExitCode"])
    if out.returncode != 0:
        return None
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0]:
            return SlurmJobState(parts[0].split()[0], parts[1], parts[2])
    return None


def query_state(native: str) -> SlurmJobState | None:
    return query_scontrol(native) or query_sacct(native)


def outcome(found: SlurmJobState) -> tuple[JobState, str] | None:
    """Map a finished SLURM state to a psik state and reason; None while the job is alive."""
    name = found.state.rstrip("+")
    if name in ALIVE:
        return None
    detail = f"SLURM state {name}"
    if found.reason and found.reason not in ("None", "none"):
        detail += f", reason {found.reason}"
    if found.exit_code:
        detail += f", exit code {found.exit_code}"
    if name == "COMPLETED":
        return JobState.COMPLETED, detail
    if name == "CANCELLED":
        return JobState.CANCELED, f"canceled in SLURM outside psik ({detail})"
    return JobState.FAILED, f"{REASONS.get(name, name.lower())} ({detail})"


def _ask(job: JobDir, native: str,
         query: Callable[[str], SlurmJobState | None]) -> tuple[bool, SlurmJobState | None]:
    """(True, what ``query`` says about SLURM job ``native``), or (False, None) when SLURM cannot say."""
    try:
        return True, query(native)
    except (OSError, subprocess.TimeoutExpired, SlurmError) as exc:
        log.warning("job %s: cannot query SLURM job %s: %s", job.jobid, native, exc)
        return False, None


class SlurmBackend:
    def start(self, job: JobDir, spec: JobSpec, jobndx: int, config: BackendConfig, account: Account) -> None:
        script = render_script(job, spec, jobndx, config, account)
        safefs.write_text(job.path, f"slurm.{jobndx}.sh", script)  # kept for people; sbatch reads stdin
        try:
            # --export=ALL hands the job sbatch's own environment: another account gets none of the service's
            out = _run(["sbatch", "--parsable", *submit_as(account)], stdin=script,
                       env=accounts.job_environment(account))
        except (OSError, subprocess.TimeoutExpired) as exc:
            reach(job, jobndx, JobState.FAILED, f"sbatch could not run: {exc}")
            return
        if out.returncode != 0:
            reach(job, jobndx, JobState.FAILED, f"sbatch refused the job: {out.stderr.strip()[:500]}")
            return
        native = out.stdout.strip().split(";")[0]
        job.set_native_id(jobndx, native)
        log.info("job %s run %d: SLURM job %s", job.jobid, jobndx, native)

    def cancel(self, job: JobDir, jobndx: int, config: BackendConfig) -> None:
        native = job.native_id(jobndx)
        if native is None or not native.isdigit():
            return
        # native.N lies in the job's own folder: cancel the SLURM job only if it is the account's
        asked, found = _ask(job, native, query_scontrol)
        if not asked:
            return
        if found is None or found.uid != job.folder_uid():
            log.warning("job %s run %d: SLURM job %s is not this job's; not cancelling it", job.jobid, jobndx, native)
            return
        out = _run(["scancel", native])
        if out.returncode != 0:
            log.warning("job %s: scancel %s failed: %s", job.jobid, native, out.stderr.strip())

    def reconcile(self, job: JobDir, jobndx: int, config: BackendConfig) -> None:
        native = job.native_id(jobndx)
        if native is None:
            return
        asked, found = _ask(job, native, query_state)
        if not asked:
            return
        if found is None:
            reach(job, jobndx, JobState.FAILED, f"SLURM job {native} vanished without reporting")
            return
        result = outcome(found)
        if result is not None:
            reach(job, jobndx, result[0], result[1])
