"""SLURM backend against a real single-node slurmctld + slurmd + munge (tests/fixtures/slurm.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from psik import accounts
from psik.backends.slurm import (
    SlurmJobState,
    format_time,
    outcome,
    render_script,
    sbatch_directives,
    submit_as,
)
from psik.client import LocalPsik
from psik.jobdir import JobDir
from psik.models import BackendConfig, JobRecord, JobSpec, JobState, PsikConfig
from tests.fixtures.slurm import SlurmCluster
from tests.psik.helpers import callback_receiver, cancel_unfinished, wait_for


@pytest.fixture(scope="module")
def slurm_psik(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPsik]:
    mp = pytest.MonkeyPatch()
    for key, value in slurm_cluster.env.items():
        mp.setenv(key, value)
    prefix = tmp_path_factory.mktemp("slurmjobs")
    config = PsikConfig(prefix=prefix, backends={
        "default": BackendConfig(type="slurm", queue_name=slurm_cluster.partition)})
    psik = LocalPsik(config)
    try:
        yield psik
    finally:
        cancel_unfinished(config)  # nothing of ours may keep running in the cluster
        mp.undo()


@pytest.fixture(scope="module")
def time_limited(slurm_psik: LocalPsik) -> JobRecord:
    """Submitted as early as possible: SLURM counts time limits in whole minutes, so this takes over one."""
    return slurm_psik.submit(JobSpec(name="too-long", script="sleep 600", resources={"duration": 0.1}))


def finished(psik: LocalPsik, jobid: str, timeout: float = 120) -> JobRecord:
    return wait_for(lambda: (r := psik.get(jobid)).state.terminal and r, timeout=timeout,
                    interval=0.5, what=f"SLURM job {jobid} to finish")


def active(psik: LocalPsik, jobid: str) -> JobRecord:
    return wait_for(lambda: (r := psik.get(jobid)).state is JobState.ACTIVE and r, timeout=120,
                    interval=0.3, what=f"SLURM job {jobid} to start")


def slurm_state(native: str) -> str:
    out = subprocess.run(["scontrol", "-o", "show", "job", native], capture_output=True, text=True, timeout=30)
    return next(t.split("=", 1)[1] for t in out.stdout.split() if t.startswith("JobState="))


def test_complete_and_fail(slurm_psik: LocalPsik, time_limited: JobRecord) -> None:
    ok = slurm_psik.submit(JobSpec(name="ok", script="echo hello $jobid $jobndx $nodes", environment={"A": "b c"}))
    bad = slurm_psik.submit(JobSpec(name="bad", script="echo $A >&2; exit 7", environment={"A": "b c"}))
    done, failed = finished(slurm_psik, ok.jobid), finished(slurm_psik, bad.jobid)
    assert done.state is JobState.COMPLETED, done.info
    assert [e.state.value for e in done.history] == ["new", "queued", "active", "completed"]
    assert "slurm job" in done.history[2].info and done.native_id
    assert slurm_psik.logs(ok.jobid) == f"hello {ok.jobid} 1 1\n"
    assert failed.state is JobState.FAILED and failed.info == "exit code 7: b c"  # with its last error line
    assert slurm_psik.logs(bad.jobid, stream="stderr") == "b c\n"
    assert slurm_state(done.native_id) == "COMPLETED"
    again = slurm_psik.rerun(ok.jobid)
    assert again.jobndx == 2
    wait_for(lambda: slurm_psik.get(ok.jobid).history[-1].state is JobState.COMPLETED, timeout=120,
             interval=0.5, what="re-run to complete")
    assert slurm_psik.get(ok.jobid).native_id != done.native_id


def test_cancel_through_psik(slurm_psik: LocalPsik) -> None:
    rec = slurm_psik.submit(JobSpec(name="cancel-me", script="sleep 600"))
    native = active(slurm_psik, rec.jobid).native_id
    assert native
    assert slurm_psik.cancel(rec.jobid).state is JobState.CANCELED
    wait_for(lambda: slurm_state(native) == "CANCELLED", timeout=60, what="SLURM to cancel the job")
    assert slurm_psik.get(rec.jobid).info == "canceled by local"


def test_scancel_from_outside_is_detected(slurm_psik: LocalPsik) -> None:
    rec = slurm_psik.submit(JobSpec(name="killed-outside", script="sleep 600"))
    native = active(slurm_psik, rec.jobid).native_id
    assert native
    subprocess.run(["scancel", native], check=True, timeout=30)
    done = finished(slurm_psik, rec.jobid)
    assert done.state is JobState.CANCELED and "outside psik" in done.info


def test_time_limit_is_detected(slurm_psik: LocalPsik, time_limited: JobRecord) -> None:
    done = finished(slurm_psik, time_limited.jobid, timeout=240)
    assert done.state is JobState.FAILED
    assert "time limit" in done.info and "TIMEOUT" in done.info


def test_sbatch_refusal_marks_failed(slurm_psik: LocalPsik) -> None:
    rec = slurm_psik.submit(JobSpec(name="impossible", script="true", resources={"gpu_cores_per_process": 1}))
    assert rec.state is JobState.FAILED and "sbatch refused" in rec.info


def test_rendered_directives(tmp_path: Path) -> None:
    spec = JobSpec(script="true", resources={"duration": 90.5, "node_count": 2, "process_count": 8,
                                             "processes_per_node": 4, "cpu_cores_per_process": 3,
                                             "gpu_cores_per_process": 1, "exclusive_node_use": True},
                   inherit_environment=False)
    job = JobDir.create(tmp_path, spec, "alice", accounts.current())
    lines = sbatch_directives(spec, BackendConfig(type="slurm", queue_name="q", project_name="p",
                                                  reservation_id="r"), job, 3)
    for expected in ("--nodes=2", "--ntasks=8", "--ntasks-per-node=4", "--cpus-per-task=3", "--gpus-per-task=1",
                     "--time=90:30", "--exclusive", "--partition=q", "--account=p", "--reservation=r",
                     "--export=NONE", f"--output={job.path}/log/stdout.3"):
        assert f"#SBATCH {expected}" in lines, expected
    assert format_time(0.1) == "0:06"
    assert submit_as(accounts.current()) == []
    nobody = accounts.lookup("nobody")
    assert submit_as(nobody) == [f"--uid={nobody.uid}", f"--gid={nobody.gid}"]
    script = render_script(job, spec, 3, BackendConfig(type="slurm"), nobody)
    assert f"export HOME={nobody.home}" in script and "export USER=nobody" in script
    assert "started --no-deliver" in script and "ended --no-deliver" in script and " deliver " in script


@pytest.mark.parametrize(("state", "reason", "want", "words"), [
    ("TIMEOUT", "TimeLimit", JobState.FAILED, "time limit"),
    ("NODE_FAIL", "NodeDown", JobState.FAILED, "node failure"),
    ("CANCELLED+", "None", JobState.CANCELED, "outside psik"),
    ("OUT_OF_MEMORY", "None", JobState.FAILED, "out of memory"),
    ("COMPLETED", "None", JobState.COMPLETED, "COMPLETED"),
])
def test_outcome_of_unreported_end(state: str, reason: str, want: JobState, words: str) -> None:
    result = outcome(SlurmJobState(state, reason, "0:9"))
    assert result is not None and result[0] is want and words in result[1]
    assert outcome(SlurmJobState("RUNNING")) is None and outcome(SlurmJobState("PENDING")) is None


def test_missing_interpreter_and_callbacks_under_slurm(slurm_psik: LocalPsik) -> None:
    """The batch script says why the user's script did not start, and posts every state change in order."""
    with callback_receiver("slurm-secret") as receiver:
        rec = slurm_psik.submit(JobSpec(name="no-python", script="#!/nonexistent/python3\nprint(1)\n",
                                        callback=receiver.url, cb_secret="slurm-secret"))
        failed = finished(slurm_psik, rec.jobid)
        assert failed.state is JobState.FAILED
        assert failed.info == "cannot start the script: its interpreter (from the #! line) /nonexistent/python3 " \
                              "does not exist"
        wait_for(lambda: len(receiver.states(rec.jobid)) == 3, timeout=120, what="3 callbacks from the batch job")
        assert receiver.states(rec.jobid) == [(1, "new"), (1, "queued"), (1, "failed")]
        recorded = wait_for(lambda: r if len((r := slurm_psik.get(rec.jobid)).callbacks) == 3 else None,
                            timeout=60, what="3 recorded deliveries")
        assert all(c.delivered for c in recorded.callbacks) and recorded.callbacks_pending == 0


def test_callbacks_from_a_batch_job_in_order(slurm_psik: LocalPsik) -> None:
    with callback_receiver("slurm-secret") as receiver:
        rec = slurm_psik.submit(JobSpec(name="cb", script="echo out; exit 3", callback=receiver.url,
                                        cb_secret="slurm-secret"))
        assert finished(slurm_psik, rec.jobid).info == "exit code 3"
        wait_for(lambda: len(receiver.states(rec.jobid)) == 4, timeout=120, what="4 callbacks from the batch job")
        assert receiver.states(rec.jobid) == [(1, "new"), (1, "queued"), (1, "active"), (1, "failed")]
