"""What every backend implements, and the variables every job script sees."""

from __future__ import annotations

import os
import shutil
import sys
from abc import ABC, abstractmethod
from pathlib import Path

from psik.accounts import Account
from psik.jobdir import JobDir
from psik.models import BackendConfig, JobSpec

SCRIPT_NAME = "script.sh"


def write_script(job: JobDir, spec: JobSpec) -> Path:
    """Store the user's script in the job folder (before it is handed to the account), executable by the owner only."""
    path = job.path / SCRIPT_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    with os.fdopen(fd, "w") as fh:
        fh.write(spec.script if spec.script.endswith("\n") else spec.script + "\n")
    return path


def script_command(job: JobDir, spec: JobSpec) -> list[str]:
    """A script with a #! line runs as itself; anything else runs under bash."""
    path = str(job.path / SCRIPT_NAME)
    return [path] if spec.script.startswith("#!") else ["/bin/bash", path]


def default_mpirun() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else (shutil.which("mpiexec") or "mpiexec")


def job_variables(job: JobDir, jobndx: int, mpirun: str, nodes: str) -> dict[str, str]:
    return {"jobid": job.jobid, "jobndx": str(jobndx), "base": str(job.path), "mpirun": mpirun, "nodes": nodes}


class Backend(ABC):
    @abstractmethod
    def start(self, job: JobDir, spec: JobSpec, jobndx: int, config: BackendConfig, account: Account) -> None:
        """Start run ``jobndx`` (already recorded as queued) as ``account``; record its native id; report
        failure to start."""

    @abstractmethod
    def cancel(self, job: JobDir, jobndx: int, config: BackendConfig) -> None:
        """Stop run ``jobndx`` (already recorded as canceled) and everything it started."""

    def reconcile(self, job: JobDir, jobndx: int, config: BackendConfig) -> None:  # noqa: B027 - optional
        """Detect a run that ended without reporting, and record how it ended."""
