"""Supervisor of one local run: ``python -m psik.run JOBDIR JOBNDX``.

Runs as the job's account and leads its own process group (the local backend starts it so). Checks
that the script can start (``psik.launch.preflight``: a missing script or interpreter fails the run
saying which), marks the run active, runs the script with $jobid $jobndx $base $mpirun $nodes,
enforces the time limit, and marks the run completed or failed with its exit code and last error
line. Callbacks go out in the background; before it exits the supervisor waits (bounded) for them.
A cancel signals the whole group; the supervisor then makes sure nothing of the group survives.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from psik import delivery
from psik.backends.base import SCRIPT_NAME, default_mpirun, job_variables, script_command
from psik.backends.local import CANCEL_GRACE
from psik.jobdir import JobDir
from psik.launch import exit_reason, preflight, start_error
from psik.models import JobState
from psik.safefs import read_tail
from psik.transitions import reach

log = logging.getLogger("psik.run")
FLUSH_TIMEOUT = 60.0  # seconds a finished supervisor waits for its callbacks to go out


def end_own_group(proc: subprocess.Popen[bytes], grace: float = CANCEL_GRACE) -> None:
    """SIGTERM everything in this supervisor's group, wait for the script, then SIGKILL the group (and self)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    delivery.flush(FLUSH_TIMEOUT)
    logging.shutdown()
    os.killpg(0, signal.SIGKILL)


def job_environment(job: JobDir, jobndx: int) -> dict[str, str]:
    spec = job.spec()
    env = dict(os.environ) if spec.inherit_environment else {
        k: os.environ[k] for k in ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR") if k in os.environ}
    env.pop("PSIK_MPIRUN", None)
    mpirun = os.environ.get("PSIK_MPIRUN") or default_mpirun()
    env.update(spec.environment)
    env.update(job_variables(job, jobndx, mpirun, str(spec.resources.node_count)))
    return env


def run(job: JobDir, jobndx: int) -> int:
    spec = job.spec()
    env = job_environment(job, jobndx)
    problem = preflight(job.path / SCRIPT_NAME, spec.script, env)
    if problem is not None:
        reach(job, jobndx, JobState.FAILED, f"cannot start the script: {problem}")
        return 1
    if reach(job, jobndx, JobState.ACTIVE, f"pid {os.getpid()}") is None:
        return 0  # canceled before it started
    terminated: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(signum))
    with open(job.log_path("stdout", jobndx), "ab") as out, open(job.log_path("stderr", jobndx), "ab") as err:
        try:
            proc = subprocess.Popen(script_command(job, spec), cwd=job.workdir(spec), env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        except OSError as exc:
            reach(job, jobndx, JobState.FAILED, f"cannot start the script: {start_error(exc)}")
            return 1
        try:
            rc = proc.wait(timeout=spec.resources.duration * 60)
        except subprocess.TimeoutExpired:
            reach(job, jobndx, JobState.FAILED, f"time limit of {spec.resources.duration:g} min reached")
            end_own_group(proc)
            return 1
    if terminated:
        reach(job, jobndx, JobState.CANCELED, "terminated by signal")
        end_own_group(proc)
        return 1
    if rc == 0:
        reach(job, jobndx, JobState.COMPLETED)
    else:
        reach(job, jobndx, JobState.FAILED, exit_reason(rc, read_tail(job.path, f"log/stderr.{jobndx}", 4096)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m psik.run JOBDIR JOBNDX", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return run(JobDir(Path(args[0])), int(args[1]))
    finally:
        delivery.flush(FLUSH_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
