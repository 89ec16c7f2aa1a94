"""The lclstream CLI against a real service, and the timeouts that fail a transfer."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import yaml

from tests.fixtures.pki import Pki
from tests.lclstream_api.harness import VENV_BIN, Service, env_with_venv, synthetic_config, wait_for


def _lclstream(service: Service, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "lclstream"), *args], capture_output=True, text=True, timeout=timeout,
                          env=env_with_venv({"CERTIFIED_CONFIG": str(service.pki.user_dir("alice"))}))


def test_get_requests_pulls_and_reports(service: Service, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(synthetic_config(events=16, batch=4)))
    got = _lclstream(service, "get", str(cfg), "--server", "lclstream", "--ranks", "2", "--out",
                     str(tmp_path / "out"), "--wait", "60")
    assert got.returncode == 0, got.stderr
    transfer_id, url = got.stdout.split()[:2]
    assert url.startswith("tls+tcp://127.0.0.1:")
    assert "complete: every producer's sequence received" in got.stderr
    assert len(list((tmp_path / "out").glob("r000[01]-s0000000[01].h5"))) == 4
    wait_for(lambda: json.loads(_lclstream(service, "status", transfer_id).stdout)["state"] == "completed",
             60, interval=1, what="completed")
    listed = _lclstream(service, "list")
    assert listed.returncode == 0 and transfer_id in listed.stdout and "completed" in listed.stdout
    missing = _lclstream(service, "status", "nosuchtransfer")
    assert missing.returncode == 1 and "404" in missing.stderr and "Traceback" not in missing.stderr
    bad = _lclstream(service, "request", str(cfg), "--ranks", "0")
    assert bad.returncode == 2 and "--ranks" in bad.stderr
    bad = _lclstream(service, "pull", "tcp://127.0.0.1:9", "--connections", "0")
    assert bad.returncode == 2 and "--connections: must be 1 or more, got 0" in bad.stderr and "Traceback" not in bad.stderr


def test_no_consumer_within_the_idle_timeout_fails_the_transfer(service: Service) -> None:
    with service.client("alice") as api:
        # long enough for the producer ranks to start on a loaded machine (they must come first)
        view = api.request(synthetic_config(), {"ranks": 1, "idle_timeout": 10})
        final = wait_for(lambda: (v := api.status(view.id)).state.terminal and v, 90, what="terminal state")
        assert final.state.value == "failed" and final.reason == "no consumer connected within 10 s"
        wait_for(lambda: api.status(view.id).jobs["buffer"].state in ("canceled", "completed", "failed"), 30,
                 what="buffer stopped")


def test_ctrl_c_during_get_cancels_the_transfer(service: Service, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(synthetic_config(events=400, batch=4)))
    proc = subprocess.Popen([str(VENV_BIN / "lclstream"), "get", str(cfg), "--ranks", "2", "--out", str(tmp_path / "o")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_with_venv({"CERTIFIED_CONFIG": str(service.pki.user_dir("alice"))}))
    try:
        assert proc.stdout is not None
        transfer_id = proc.stdout.readline().split()[0]  # printed before pulling starts
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, err
    assert f"transfer {transfer_id} canceled" in err
    with service.client("alice") as api:
        assert api.status(transfer_id).state.value == "canceled"


def test_no_producer_within_the_idle_timeout_fails_the_transfer(tmp_path: Path, api_pki: Pki) -> None:
    hang = tmp_path / "hanging-mpirun"
    hang.write_text("#!/bin/sh\nexec sleep 120\n")  # a launcher whose ranks never come up
    hang.chmod(0o755)
    backends = {"default": {"type": "local"}, "stuck": {"type": "local", "mpirun": str(hang)}}
    service = Service(tmp_path / "svc", api_pki, overrides={"backends": backends})
    try:
        service.start()
        with service.client("alice") as api:
            view = api.request(synthetic_config(), {"ranks": 1, "backend": "stuck", "idle_timeout": 3})
            final = wait_for(lambda: (v := api.status(view.id)).state.terminal and v, 90, what="terminal state")
            assert final.state.value == "failed"
            assert final.reason.startswith("buffer failed: ") and "producer" in final.reason, final.reason
            done = ("completed", "failed", "canceled")
            stopped = wait_for(lambda: (v := api.status(view.id)) and all(j.state in done for j in v.jobs.values())
                               and v, 60, what="both jobs ended")
            assert stopped.jobs["producer"].state == "canceled"  # stopped by the service
            assert stopped.jobs["buffer"].state == "failed"  # ended by itself, with its own outcome
    finally:
        service.stop()
        service.cleanup_jobs()
