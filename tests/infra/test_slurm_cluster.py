"""The single-node SLURM test cluster really schedules, runs, fails, cancels and times out jobs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fixtures.slurm import SlurmCluster


def test_node_is_idle_in_the_default_partition(slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    out = slurm_cluster.run("sinfo", "-h", "-o", "%P|%T|%N|%c").stdout.strip()
    assert out == f"{slurm_cluster.partition}*|idle|{slurm_cluster.node}|{slurm_cluster.cpus}"


def test_sbatch_job_completes_and_writes_its_output(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "job.out"
    jobid = slurm_cluster.sbatch("-J", "hello", "-o", str(out), "-D", str(tmp_path),
                                 "--wrap", "echo hello from $SLURM_JOB_ID on $SLURMD_NODENAME; echo data > made.txt")
    info = slurm_cluster.wait_for_state(jobid, timeout=120)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", info
    assert out.read_text() == f"hello from {jobid} on {slurm_cluster.node}\n"
    assert (tmp_path / "made.txt").read_text() == "data\n"
    squeue = slurm_cluster.run("squeue", "-h", "-t", "all", "-j", jobid, "-o", "%i|%T").stdout.strip()
    assert squeue == f"{jobid}|COMPLETED"
    assert slurm_cluster.completed_jobs()[jobid]["JobState"] == "COMPLETED"


def test_failing_job_reports_its_exit_code(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:  # noqa: F811
    jobid = slurm_cluster.sbatch("-o", str(tmp_path / "fail.out"), "--wrap", "echo failing; exit 3")
    info = slurm_cluster.wait_for_state(jobid, timeout=120)
    assert (info["JobState"], info["Reason"], info["ExitCode"]) == ("FAILED", "NonZeroExitCode", "3:0")
    assert slurm_cluster.completed_jobs()[jobid]["ExitCode"] == "3:0"


def test_scancel_stops_a_running_job(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:  # noqa: F811
    marker = tmp_path / "started"
    jobid = slurm_cluster.sbatch("-o", str(tmp_path / "cancel.out"),
                                 "--wrap", f"touch {marker}; sleep 600; echo not-cancelled")
    slurm_cluster.wait_for_state(jobid, {"RUNNING"}, timeout=120)
    slurm_cluster.run("scancel", jobid)
    info = slurm_cluster.wait_for_state(jobid, timeout=120)
    assert info["JobState"] == "CANCELLED", info
    assert marker.exists()
    assert "not-cancelled" not in (tmp_path / "cancel.out").read_text()


def test_sacct_is_unavailable_without_slurmdbd(slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    out = slurm_cluster.run("sacct", "-X", "-n", "-P", check=False)
    assert out.returncode != 0 and "accounting storage is disabled" in (out.stdout + out.stderr)


def test_unknown_job_id_is_an_error(slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    out = slurm_cluster.run("scontrol", "-o", "show", "job", "999999", check=False)
    assert out.returncode != 0 and "Invalid job id" in out.stderr


def test_node_failure_ends_job_with_node_fail_and_node_comes_back(slurm_cluster: SlurmCluster,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    marker = tmp_path / "started"
    jobid = slurm_cluster.sbatch("-o", str(tmp_path / "crash.out"), "--wrap", f"touch {marker}; sleep 600")
    slurm_cluster.wait_for_state(jobid, {"RUNNING"}, timeout=120)
    try:
        slurm_cluster.fail_node()
        info = slurm_cluster.wait_for_state(jobid, timeout=150)  # SlurmdTimeout 15 s plus ping period
        assert (info["JobState"], info["Reason"]) == ("NODE_FAIL", "NodeDown"), info
        node = slurm_cluster.run("sinfo", "-h", "-N", "-o", "%T|%E").stdout.strip()
        assert node.startswith("down") and "Not responding" in node, node
        assert slurm_cluster.completed_jobs()[jobid]["JobState"] == "NODE_FAIL"
    finally:
        slurm_cluster.restore_node()
    assert slurm_cluster.wait_for_state(slurm_cluster.sbatch("--wrap", "true"))["JobState"] == "COMPLETED"


def test_time_limit_ends_job_with_timeout(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "slow.out"
    jobid = slurm_cluster.sbatch("--time=1", "-o", str(out), "--wrap", "sleep 600")
    info = slurm_cluster.wait_for_state(jobid, timeout=170)  # limit 60 s, checked every ~30 s
    assert (info["JobState"], info["Reason"]) == ("TIMEOUT", "TimeLimit"), info
    assert "DUE TO TIME LIMIT" in out.read_text()
    assert slurm_cluster.completed_jobs()[jobid]["JobState"] == "TIMEOUT"


def test_outside_commands_use_the_cluster_env(slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    out = subprocess.run(["scontrol", "show", "config"], env=slurm_cluster.env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    assert f"SLURM_CONF              = {slurm_cluster.conf_path}" in out.stdout
