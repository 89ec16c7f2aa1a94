"""Test helpers: bounded waiting, a real HTTP callback receiver that checks signatures, process probes,
and a real ``psik-api`` process (``psik_api(config, certified_dir, log)``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from certified.signature import SIGNATURE_HEADER, verify
from psik.client import LocalPsik
from psik.models import PsikConfig

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float = 60.0, interval: float = 0.1, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; bounded by ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Receiver:
    url: str
    secret: str
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[bytes] = field(default_factory=list)

    def states(self, jobid: str) -> list[tuple[int, str]]:
        return [(c["jobndx"], c["state"]) for c in self.accepted if c["jobid"] == jobid]


@contextmanager
def callback_receiver(secret: str) -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that accepts only correctly signed callbacks (401 otherwise)."""
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            rec = box["r"]
            if verify(body, rec.secret, self.headers.get(SIGNATURE_HEADER)):
                rec.accepted.append(json.loads(body))
                self.send_response(200)
            else:
                rec.rejected.append(body)
                self.send_response(401)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["r"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/cb", secret=secret)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield box["r"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie waiting to be reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    for line in status.splitlines():
        if line.startswith("State:"):
            return "Z" in line.split()[1]
    return False


def cancel_unfinished(config: PsikConfig) -> None:
    """Teardown: no job a test started may outlive it, whatever the test did."""
    psik = LocalPsik(config)
    for rec in psik.list(limit=100_000).jobs:
        if not rec.state.terminal:
            psik.cancel(rec.jobid)


def _listening_url(log: Path, proc: subprocess.Popen[bytes]) -> str | None:
    if proc.poll() is not None:
        raise AssertionError(f"psik-api exited {proc.returncode}: {log.read_text()[-2000:]}")
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"listening"' in line:
            return str(json.loads(line)["url"])
    return None


@contextmanager
def psik_api(config: Path, certified_dir: Path, log: Path, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> Iterator[str]:
    """``psik-api --config CONFIG`` on a free loopback port as its own process (started in ``cwd``); yields its URL.

    At the end every unfinished job of that config is canceled and the server is stopped (SIGTERM, then
    SIGKILL of its process group).
    """
    from psik.config import load_config

    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "psik.api_cli", "--config", str(config), "--listen",
                                 "https://127.0.0.1:0", "--certified-config", str(certified_dir)],
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=cwd)
    try:
        yield wait_for(lambda: _listening_url(log, proc), timeout=60, what="psik-api to listen")
    finally:
        cancel_unfinished(load_config(config))
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
