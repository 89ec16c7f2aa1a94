"""A job that cannot start says why; a dead or hanging callback URL never slows a job's state changes.

Real supervisors, real HTTP peers on loopback: a receiver that checks signatures, a "black hole" that
accepts connections and never answers (held until the test lets go), and a closed port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psik.client import LocalPsik
from psik.jobdir import JobDir
from psik.models import JobRecord, JobSpec, JobState, PsikConfig
from psik.transitions import reach
from tests.fixtures.net import free_port
from tests.psik.helpers import callback_receiver, wait_for

SECRET = "cb-secret"


def finished(psik: LocalPsik, jobid: str) -> JobRecord:
    return wait_for(lambda: r if (r := psik.get(jobid)).state.terminal else None, timeout=60,
                    what=f"job {jobid} to finish")


def test_missing_interpreter_fails_with_that_reason(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    rec = finished(psik, psik.submit(JobSpec(script="#!/nonexistent/python3\nprint('hi')\n")).jobid)
    assert rec.state is JobState.FAILED
    assert rec.info == "cannot start the script: its interpreter (from the #! line) /nonexistent/python3 does not exist"
    assert [e.state.value for e in rec.history] == ["new", "queued", "failed"], "it never became active"


def test_interpreter_that_is_not_executable(local_config: PsikConfig, tmp_path: Path) -> None:
    psik = LocalPsik(local_config)
    plain = tmp_path / "not-a-program"
    plain.write_text("data\n")
    plain.chmod(0o644)
    rec = finished(psik, psik.submit(JobSpec(script=f"#!{plain}\n")).jobid)
    assert rec.state is JobState.FAILED
    assert rec.info == f"cannot start the script: its interpreter (from the #! line) {plain} is not executable by this account"


def test_env_interpreter_missing_from_path(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    rec = finished(psik, psik.submit(JobSpec(script="#!/usr/bin/env no-such-python-7\nprint(1)\n")).jobid)
    assert rec.state is JobState.FAILED
    assert "its interpreter no-such-python-7 (from `#!/usr/bin/env no-such-python-7`) is not on the job's PATH" in rec.info


def test_missing_command_names_itself(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    rec = finished(psik, psik.submit(JobSpec(script="echo starting\nno-such-command-42 --flag\n")).jobid)
    assert rec.state is JobState.FAILED
    assert rec.info.startswith("exit code 127: ") and "no-such-command-42: command not found" in rec.info


def test_missing_script_file(local_config: PsikConfig) -> None:
    """A job folder whose script is gone (as with a relative path resolved in the wrong folder)."""
    from psik import accounts

    job = JobDir.create(local_config.prefix, JobSpec(script="true"), "local", accounts.current())
    reach(job, 1, JobState.QUEUED, "by the test")
    out = subprocess.run([sys.executable, "-m", "psik.run", str(job.path), "1"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1, out.stderr
    last = job.history()[-1]
    assert last.state is JobState.FAILED
    assert last.info == f"cannot start the script: the script file {job.path / 'script.sh'} is missing"


@contextmanager
def black_hole() -> Iterator[tuple[str, list[socket.socket]]]:
    """An HTTP URL whose server accepts connections and never answers, until the context ends."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook", held
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
        for conn in held:
            conn.close()


def test_hanging_callback_does_not_delay_state_changes(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    with black_hole() as (url, held):
        slow = psik.submit(JobSpec(name="with-callback", script="echo done", callback=url, cb_secret=SECRET))
        plain = psik.submit(JobSpec(name="without", script="echo done"))
        done_slow, done_plain = finished(psik, slow.jobid), finished(psik, plain.jobid)
        # the job went all the way while the receiver still holds the first callback unanswered
        assert done_slow.callbacks == [] and done_slow.callbacks_pending == 4
        assert held, "the first callback is being attempted"
        assert [e.state for e in done_slow.history] == [e.state for e in done_plain.history] == [
            JobState.NEW, JobState.QUEUED, JobState.ACTIVE, JobState.COMPLETED]
        assert psik.logs(slow.jobid) == psik.logs(plain.jobid) == "done\n"


def test_unreachable_callback_is_recorded_where_status_shows_it(local_config: PsikConfig, tmp_path: Path) -> None:
    psik = LocalPsik(local_config)
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    rec = psik.submit(JobSpec(script="true", callback=url, cb_secret=SECRET))
    assert finished(psik, rec.jobid).state is JobState.COMPLETED
    final = wait_for(lambda: r if len((r := psik.get(rec.jobid)).callbacks) == 4 else None, timeout=180,
                     what="every delivery to be given up (5 attempts each)")
    assert [(c.state.value, c.delivered, c.attempts) for c in final.callbacks] == [
        (s, False, 5) for s in ("new", "queued", "active", "completed")]
    assert all("ConnectError" in c.detail for c in final.callbacks) and final.callbacks_pending == 0
    cfg = tmp_path / "psik.json"
    cfg.write_text(json.dumps({"prefix": str(local_config.prefix)}))
    env = {k: v for k, v in os.environ.items() if k != "PSIK_CONFIG"}
    shown = subprocess.run([sys.executable, "-m", "psik.cli", "--config", str(cfg), "status", rec.jobid],
                           capture_output=True, text=True, timeout=120, env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"callbacks to {url}: 0 delivered, 4 failed, 0 pending" in shown.stdout
    assert shown.stdout.count("callback failed after 5 attempt(s): ConnectError") == 4


def test_callbacks_arrive_in_order_and_are_recorded(local_config: PsikConfig) -> None:
    psik = LocalPsik(local_config)
    with callback_receiver(SECRET) as receiver:
        rec = psik.submit(JobSpec(script="true", callback=receiver.url, cb_secret=SECRET))
        finished(psik, rec.jobid)
        wait_for(lambda: len(receiver.states(rec.jobid)) == 4, timeout=60, what="4 callbacks")
        assert receiver.states(rec.jobid) == [(1, "new"), (1, "queued"), (1, "active"), (1, "completed")]
        final = wait_for(lambda: r if len((r := psik.get(rec.jobid)).callbacks) == 4 else None, timeout=60,
                         what="4 recorded deliveries")
        assert [(c.seq, c.delivered, c.attempts) for c in final.callbacks] == [(i, True, 1) for i in range(4)]


def test_a_transfer_says_why_its_buffer_did_not_start(tmp_path: Path) -> None:
    """The job's reason reaches the transfer's: not a bare exit code."""
    from tests.fixtures.pki import make_pki
    from tests.lclstream_api.harness import Service, synthetic_config

    service = Service(tmp_path / "svc", make_pki(tmp_path, server="lclstream-api", users=("alice",)),
                      overrides={"commands": {"nng_stream": "/nonexistent/nng-stream"}})
    try:
        service.start()
        with service.client("alice") as api:
            view = api.request(synthetic_config(events=8), {"idle_timeout": 60})
            done = api.wait(view.id, timeout=120)
        assert done.state.value == "failed"
        assert done.reason.startswith("buffer failed: exit code 127: ")
        assert "/nonexistent/nng-stream: No such file or directory" in done.reason
    finally:
        service.stop()
        service.cleanup_jobs()
