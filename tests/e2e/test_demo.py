"""``make demo`` (``lclstream-site demo``) runs to completion: the whole system starts, one live run fires
the DAG, the consumer receives it, the annotation is shown, the Airflow UI's address and login are
printed, and when the demo returns no process it started is left, nor anything still using its folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from airflow_provider_lclstream.local_site.processes import alive

BIN = Path(sys.executable).parent


def _using(folder: Path) -> list[psutil.Process]:
    """Processes whose command line, working directory or environment names ``folder``."""
    found = []
    for proc in psutil.process_iter():
        try:
            text = " ".join(proc.cmdline()) + " " + proc.cwd() + " " + " ".join(proc.environ().values())
        except psutil.Error:
            continue
        if str(folder) in text and proc.pid != os.getpid():
            found.append(proc)
    return found


def test_the_demo_runs_to_completion_and_leaves_no_process(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    proc = subprocess.Popen([str(BIN / "lclstream-site"), "demo", "--out", str(folder), "--duration", "6",
                             "--rate", "10", "--shape", "1,64,64"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    seen: dict[int, float] = {}
    deadline = time.monotonic() + 900
    try:
        while proc.poll() is None:  # note every process of the demo while it runs
            assert time.monotonic() < deadline, "the demo did not finish within 900 s"
            try:
                for child in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
                    seen.setdefault(child.pid, child.create_time())
            except psutil.Error:
                pass
            time.sleep(0.5)
        out = proc.stdout.read() if proc.stdout else ""
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
    assert proc.returncode == 0, out[-6000:]
    assert "Airflow UI   http://127.0.0.1:" in out and "login admin / " in out
    assert "the run's run_start fired lclstream_on_run_start: DAG run asset_triggered__" in out
    assert "streams the run into consumer job" in out
    assert "| LCLStream: run demo01/1 streamed" in out
    assert "delivered count equals the run's event count (60)" in out
    assert "every process the demo started is stopped" in out
    assert len(seen) > 10  # Kafka, the services, Airflow's components, the DAQ, jobs...
    time.sleep(1)
    assert alive(seen) == []
    assert _using(folder) == []
    assert list((folder / "site" / "data" / "demo01" / "r0001").glob("*.h5"))  # what the consumer received
