"""Local backend: each run is a supervisor (`python -m psik.run`) leading its own process group.

The supervisor runs as the job's account (a service running as root switches user for it), in the
job folder, so everything the job does, state and log writes included, is done with that account's
rights only.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from psik import accounts, safefs
from psik.accounts import Account
from psik.jobdir import JobDir
from psik.launch import start_error
from psik.models import BackendConfig, JobSpec, JobState
from psik.transitions import reach

log = logging.getLogger("psik")

CANCEL_GRACE = 5.0


def leader_uid(pgid: int) -> int | None:
    """The real uid of process ``pgid`` if it leads its process group, else None."""
    try:
        if os.getpgid(pgid) != pgid:
            return None
        with open(f"/proc/{pgid}/status") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int, grace: float = CANCEL_GRACE) -> None:
    """SIGTERM the whole group, then SIGKILL whatever is left after ``grace`` seconds."""
    if pgid <= 1:
        raise ValueError(f"refusing to signal process group {pgid}")
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class LocalBackend:
    def start(self, job: JobDir, spec: JobSpec, jobndx: int, config: BackendConfig, account: Account) -> None:
        env = {**accounts.job_environment(account), "PSIK_MPIRUN": config.mpirun or ""}
        try:
            with safefs.open_file(job.path, f"log/psik.{jobndx}", "a", create=True) as plog:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "psik.run", str(job.path), str(jobndx)],
                    stdin=subprocess.DEVNULL, stdout=plog, stderr=plog, start_new_session=True, close_fds=True,
                    cwd=job.path, env=env, **accounts.popen_user(account),  # type: ignore[arg-type]
                )
        except OSError as exc:
            reach(job, jobndx, JobState.FAILED, f"could not start its supervisor as {account.name!r}: "
                                                f"{start_error(exc)}")
            return
        job.set_native_id(jobndx, str(proc.pid))
        # reap the supervisor when it exits so that it does not linger as a zombie in a long-lived server
        threading.Thread(target=proc.wait, name=f"psik-reap-{proc.pid}", daemon=True).start()

    def cancel(self, job: JobDir, jobndx: int, config: BackendConfig) -> None:
        native = job.native_id(jobndx)
        if native is None or not native.isdigit():
            return
        # native.N lies in the job's own folder: signal the group only if the job's account leads it
        if leader_uid(int(native)) != job.folder_uid():
            log.warning("job %s run %d: process group %s is not this job's; not signalling it", job.jobid,
                        jobndx, native)
            return
        kill_group(int(native))

    def reconcile(self, job: JobDir, jobndx: int, config: BackendConfig) -> None:
        native = job.native_id(jobndx)
        if native is not None and (not native.isdigit() or not group_alive(int(native))
                                   or leader_uid(int(native)) not in (None, job.folder_uid())):
            time.sleep(0.2)  # the supervisor may be writing its final state right now
            reach(job, jobndx, JobState.FAILED, "supervisor process vanished without reporting")
