"""Local backend end to end: real supervisor processes, real callbacks into a real HTTP receiver."""

from __future__ import annotations

import os
import stat
import time

import httpx
import pytest

from certified.signature import SIGNATURE_HEADER, sign
from psik.client import LocalPsik
from psik.jobdir import JobDir, TransitionRefused
from psik.models import JobSpec, JobState, PsikConfig
from tests.psik.helpers import callback_receiver, process_gone, wait_for

SECRET = "s3cret-for-tests"


def finished(psik: LocalPsik, jobid: str, jobndx: int = 1):
    def probe():
        rec = psik.get(jobid)
        return rec if rec.jobndx == jobndx and rec.state.terminal else None
    return wait_for(probe, timeout=60, what=f"job {jobid} run {jobndx} to finish")


def test_lifecycle_with_signed_callbacks(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    with callback_receiver(SECRET) as receiver:
        spec = JobSpec(name="hello", script='echo "id=$jobid ndx=$jobndx nodes=$nodes base=$base"\n'
                       'echo "mpirun=$mpirun greeting=$GREETING"\npwd\necho to-stderr >&2\n',
                       environment={"GREETING": "hi there"}, callback=receiver.url, cb_secret=SECRET)
        rec = psik.submit(spec)
        done = finished(psik, rec.jobid)
        assert done.state is JobState.COMPLETED
        assert [e.state for e in done.history] == ["new", "queued", "active", "completed"]
        wait_for(lambda: len(receiver.states(rec.jobid)) == 4, timeout=30, what="4 callbacks")
        assert receiver.states(rec.jobid) == [(1, "new"), (1, "queued"), (1, "active"), (1, "completed")]

        # a forged callback (wrong secret) and an unsigned one are refused by the same verifier
        body = b'{"jobid":"x","jobndx":1,"state":"completed","info":""}'
        forged = httpx.post(receiver.url, content=body, headers={SIGNATURE_HEADER: sign(body, "not-the-secret")})
        unsigned = httpx.post(receiver.url, content=body)
        assert (forged.status_code, unsigned.status_code) == (401, 401)
        assert len(receiver.rejected) == 2 and receiver.states("x") == []

    job = JobDir.find(local_config.prefix, rec.jobid)
    assert stat.S_IMODE(os.stat(job.path / "spec.json").st_mode) == 0o600
    assert done.spec.cb_secret is None, "the record never shows the callback secret"
    out = psik.logs(rec.jobid)
    assert f"id={rec.jobid} ndx=1 nodes=1 base={job.path}" in out
    assert "greeting=hi there" in out and "mpiexec" in out
    assert str(job.path / "work") in out
    assert psik.logs(rec.jobid, stream="stderr") == "to-stderr\n"
    header = (job.path / "status.csv").read_text().splitlines()
    assert [line.split(",")[2] for line in header] == ["new", "queued", "active", "completed"]


def test_exit_code_decides_failed(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    rec = finished(psik, psik.submit(JobSpec(script="echo partial; exit 3")).jobid)
    assert rec.state is JobState.FAILED and rec.info == "exit code 3"
    assert psik.logs(rec.jobid, tail=1) == "partial\n"


def test_cancel_kills_whole_process_group(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    with callback_receiver(SECRET) as receiver:
        script = ("sleep 300 & echo $! > pids\n"
                  "bash -c 'sleep 300 & echo $! >> pids; wait' &\n"
                  "echo $$ >> pids\necho started > ready\nwait\n")
        rec = psik.submit(JobSpec(script=script, callback=receiver.url, cb_secret=SECRET))
        job = JobDir.find(local_config.prefix, rec.jobid)
        wait_for(lambda: (job.path / "work" / "ready").exists(), timeout=60, what="job to start its children")
        pids = wait_for(lambda: [int(p) for p in (job.path / "work" / "pids").read_text().split()]
                        if len((job.path / "work" / "pids").read_text().split()) == 3 else None,
                        timeout=30, what="3 pids")
        supervisor = int(job.native_id(1) or 0)
        assert not any(process_gone(p) for p in pids)
        canceled = psik.cancel(rec.jobid)
        assert canceled.state is JobState.CANCELED
        wait_for(lambda: all(process_gone(p) for p in [*pids, supervisor]), timeout=30,
                 what="every process of the job to die")
        wait_for(lambda: (1, "canceled") in receiver.states(rec.jobid), timeout=30, what="canceled callback")
        time.sleep(0.5)  # the dying supervisor must not overwrite the outcome
        final = psik.get(rec.jobid)
        assert final.state is JobState.CANCELED
        assert [e.state for e in final.history][-1] == "canceled"
        with pytest.raises(TransitionRefused):
            psik.cancel(rec.jobid)


def test_rerun_gets_next_jobndx(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    rec = finished(psik, psik.submit(JobSpec(script="echo run $jobndx")).jobid)
    again = psik.rerun(rec.jobid)
    assert again.jobndx == 2
    rec2 = finished(psik, rec.jobid, 2)
    assert rec2.state is JobState.COMPLETED
    assert psik.logs(rec.jobid) == "run 2\n"
    assert psik.logs(rec.jobid, jobndx=1) == "run 1\n"
    assert [(e.jobndx, e.state.value) for e in rec2.history] == [
        (1, "new"), (1, "queued"), (1, "active"), (1, "completed"),
        (2, "queued"), (2, "active"), (2, "completed")]


def test_rerun_refused_while_running(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    rec = psik.submit(JobSpec(script="sleep 60"))
    wait_for(lambda: psik.get(rec.jobid).state is JobState.ACTIVE, timeout=60, what="active")
    with pytest.raises(TransitionRefused, match="cancel it first"):
        psik.rerun(rec.jobid)
    psik.cancel(rec.jobid)


def test_local_time_limit(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    rec = psik.submit(JobSpec(script="sleep 120", resources={"duration": 0.03}))
    done = finished(psik, rec.jobid)
    assert done.state is JobState.FAILED and "time limit" in done.info


def test_unreachable_callback_does_not_change_outcome(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    with callback_receiver(SECRET) as receiver:
        url = receiver.url
    # the receiver is closed now: every callback fails after its retries, the job still completes
    rec = psik.submit(JobSpec(script="true", callback=url, cb_secret=SECRET))
    assert finished(psik, rec.jobid).state is JobState.COMPLETED


def test_directory_inside_job_folder_is_created(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    rec = finished(psik, psik.submit(JobSpec(script="pwd", directory="out/sub")).jobid)
    job = JobDir.find(local_config.prefix, rec.jobid)
    assert rec.state is JobState.COMPLETED
    assert psik.logs(rec.jobid) == f"{(job.path / 'out' / 'sub').resolve()}\n"
