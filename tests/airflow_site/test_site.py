"""The whole local site as ``make demo`` runs it (``lclstream-site up``): every piece up on loopback, every
identity accepted by every service under its own name, and every process gone after Ctrl-C; a failed
start stops what had started; bad options exit 2 naming the option."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from airflow_provider_lclstream.local_site import LocalSite, SiteSettings
from airflow_provider_lclstream.local_site.processes import alive
from elog.broker import round_trip
from elog.client import ElogClient
from elog.records import RunOpen
from lclstream_api.client import TransferClient
from lclstream_api.settings import SettingsError
from psik.client import PsikClient

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 600


def read_json_document(proc: subprocess.Popen[str], timeout: float) -> dict:
    """The JSON document ``lclstream-site up --json`` prints once everything is up."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            assert proc.poll() is None, f"lclstream-site exited with {proc.returncode}:\n{proc.stderr.read()}"  # type: ignore[union-attr]
            time.sleep(0.2)
            continue
        lines.append(line)
        if line.rstrip() == "}":
            return json.loads("".join(lines))
    raise AssertionError(f"lclstream-site printed no site description within {timeout} s")


def test_whole_site_serves_every_identity_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    root = tmp_path / "site"
    proc = subprocess.Popen([str(BIN / "lclstream-site"), "up", "--root", str(root), "--user", "alice",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    seen: dict[int, float] = {}
    try:
        site = read_json_document(proc, STARTUP_TIMEOUT)
        assert set(site["services"]) == {"psik", "lclstream", "elog"}
        assert set(site["users"]) == {"alice", "airflow", "hpc", "daq"}
        for name in ("alice", "airflow", "hpc"):  # each identity reaches each service, known by its own name
            with PsikClient("psik", site["users"][name]) as psik:
                job = psik.submit({"name": "site-check", "script": "sleep 600"})
                assert job.owner == name
            with TransferClient("lclstream", site["users"][name]) as transfers:
                assert transfers.list() == []
        with ElogClient("elog", site["users"]["daq"]) as elog:  # the DAQ writes run records, others read them
            elog.open_run(RunOpen(instrument="MFX", experiment="sitecheck", run_dir="/tmp/sitecheck/r0001"))
        with ElogClient("elog", site["users"]["alice"]) as elog:
            assert [r.key for r in elog.runs()] == ["sitecheck/1"]
        round_trip(site["kafka_bootstrap"], timeout=60)
        import httpx

        health = httpx.get(f"{site['airflow']['url']}/api/v2/monitor/health", timeout=30).json()
        assert {health[p]["status"] for p in ("scheduler", "triggerer", "dag_processor")} == {"healthy"}
        parent = psutil.Process(proc.pid)
        seen = {p.pid: p.create_time() for p in [parent, *parent.children(recursive=True)]}
        assert len(seen) > 9  # Kafka's JVM, three services, four Airflow components and their workers
        ports = [int(s["url"].rsplit(":", 1)[1]) for s in site["services"].values()]

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=180) == 0
        assert "stopped every process of the site" in (proc.stderr.read() if proc.stderr else "")
        assert alive(seen) == []
        listening = {c.laddr.port for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        assert not listening & set(ports)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for leftover in alive(seen):
            leftover.kill()


def test_a_failed_start_stops_what_had_started(tmp_path: Path) -> None:
    site = LocalSite(SiteSettings(root=tmp_path / "site", kafka=False, airflow=None,
                                  lclstream_settings={"port_pool": {"start": 30000, "end": 29000}}))
    with pytest.raises(SettingsError, match="port_pool"):
        site.start()
    seen = site.seen_pids()
    assert seen, "psik-api had started before LCLStream-API's settings were refused"
    assert alive(seen) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--user", "bad name!"], "--user 'bad name!': String should match pattern"),
    (["--airflow-password", "short"], "--airflow-password (hidden): String should have at least 8 characters"),
])
def test_bad_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    result = subprocess.run([str(BIN / "lclstream-site"), "up", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
