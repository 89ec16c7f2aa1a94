"""The ``psik`` command as a user runs it: real subprocesses, no config file, PSIK_CONFIG, bad specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.psik.helpers import wait_for

PSIK = [sys.executable, "-m", "psik.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "PSIK_CONFIG"}
    e["XDG_DATA_HOME"] = str(tmp_path / "data")
    return e


def psik(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([*PSIK, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"psik {' '.join(args)} exited {out.returncode}: {out.stderr}")
    return out


def state_of(env: dict[str, str], jobid: str) -> str:
    return json.loads(psik(env, "status", jobid, "--json").stdout)["state"]


def test_no_config_default_backend_and_data_dir(env: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: cli-job\nscript: |\n  echo hello from $jobid\n")
    jobid = psik(env, "submit", str(spec)).stdout.strip()
    assert (tmp_path / "data" / "psik" / "jobs" / jobid / "spec.json").is_file()
    wait_for(lambda: state_of(env, jobid) == "completed", timeout=60, what="completed")
    assert psik(env, "logs", jobid).stdout == f"hello from {jobid}\n"
    assert psik(env, "logs", jobid, "-f").stdout == f"hello from {jobid}\n"
    listing = psik(env, "ls", "--state", "completed").stdout
    assert jobid in listing and "cli-job" in listing
    assert psik(env, "ls", "--state", "failed").stdout == ""
    shown = psik(env, "backends").stdout
    assert shown.split()[:2] == ["default", "local"]
    assert f"limits: process_count <= {8 * (os.cpu_count() or 1)}" in shown  # a local backend's default bound
    status = psik(env, "status", jobid).stdout
    assert "run 1  completed" in status


def test_invalid_spec_reports_every_field(env: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: 'no spaces allowed'\nresources: {node_count: 0, duration: -1, colour: red}\n"
                    "environment: {jobid: x}\nbogus: 1\n")
    out = psik(env, "submit", str(spec), check=False)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    for field in ("name:", "script: required field is missing", "resources.node_count:", "resources.duration:",
                  "resources.colour: unknown field", "environment:", "bogus: unknown field"):
        assert field in out.stderr, field
    missing = psik(env, "submit", str(tmp_path / "nope.yaml"), check=False)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("script: [unclosed\n")
    out = psik(env, "submit", str(broken), check=False)
    assert out.returncode == 2 and "not valid YAML" in out.stderr and "Traceback" not in out.stderr


def test_psik_config_names_backends_and_escape_refused(env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "psik.yaml"
    cfg.write_text(f"prefix: {tmp_path / 'elsewhere'}\nbackends:\n  fast: {{type: local}}\n")
    env["PSIK_CONFIG"] = str(cfg)
    assert psik(env, "backends").stdout.split()[:2] == ["fast", "local"]
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"script": "true", "backend": "default"}))
    out = psik(env, "submit", str(spec), check=False)
    assert out.returncode == 2 and "backend 'default' is not configured" in out.stderr
    spec.write_text(json.dumps({"script": "true", "backend": "fast", "directory": "../../etc"}))
    out = psik(env, "submit", str(spec), check=False)
    assert out.returncode == 2 and "directory" in out.stderr and "'..'" in out.stderr
    assert not (tmp_path / "elsewhere").exists() or not any((tmp_path / "elsewhere").iterdir())
    cfg.write_text(f"prefix: {tmp_path / 'elsewhere'}\nbackends:\n  fast: {{type: local, limits: "
                   "{process_count: 4, duration: 60}}\n")
    assert "limits: duration <= 60, process_count <= 4" in psik(env, "backends").stdout
    spec.write_text(json.dumps({"script": "true", "backend": "fast",
                                "resources": {"process_count": 8, "duration": 600}}))
    out = psik(env, "submit", str(spec), check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "resources.duration: 600 is more than backend 'fast' allows (60)" in out.stderr
    assert "resources.process_count: 8 is more than backend 'fast' allows (4)" in out.stderr
    assert not any((tmp_path / "elsewhere").iterdir()), "nothing is created for a refused job"
    cfg.write_text("prefix: /tmp/x\nbackends: {b: {type: pbs}}\n")
    out = psik(env, "backends", check=False)
    assert out.returncode == 2 and "backends.b.type" in out.stderr


def test_reached_refuses_going_backwards(env: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("script: 'true'\n")
    jobid = psik(env, "submit", str(spec)).stdout.strip()
    wait_for(lambda: state_of(env, jobid) == "completed", timeout=60, what="completed")
    out = psik(env, "reached", jobid, "1", "active", check=False)
    assert out.returncode == 1 and "refused" in out.stderr
    out = psik(env, "status", "20990101T000000-abcdef", check=False)
    assert out.returncode == 1 and "no job" in out.stderr
