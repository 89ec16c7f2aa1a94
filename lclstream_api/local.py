"""A whole LCLStream-API deployment on this machine's loopback, for the demo and the benchmarks.

    with LocalDeployment(Path(tmp), user="alice") as deployment:
        with deployment.client() as api:
            view = api.request(config, {"ranks": 2})

Creates a service identity and a user identity with ``certified``, starts ``lclstream-api`` (jobs on
the local Psi-k backend) and, on exit, stops it and cancels every job it started.

The service picks its own ports (port 0) and says which in its ``listening`` log lines; ``wait_ready``
reads them. Choosing a free port here and probing it would race with every other process on the machine:
the port can be taken between our choice and the service's bind, and the probe then "succeeds" against
that other process, so the first request fails with a connection reset.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from certified import identity, intro
from lclstream_api.client import TransferClient
from lclstream_api.settings import load_settings
from psik.manager import JobManager

BIN = Path(sys.executable).parent
ALIAS = "lclstream"
HOSTS = ["localhost", "127.0.0.1"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_urls(log_path: Path, pid: int) -> dict[str, str]:
    """The URLs process ``pid`` said it accepts connections on (its ``listening`` JSON lines), by scheme."""
    urls: dict[str, str] = {}
    if not log_path.exists():
        return urls
    for line in log_path.read_text(errors="replace").splitlines():
        start = line.find('{"event": "listening"')
        if start < 0:
            continue
        try:
            event = json.loads(line[start:])
        except ValueError:
            continue
        if event.get("pid") == pid and isinstance(event.get("url"), str):
            urls[event["url"].split("://", 1)[0]] = event["url"]
    return urls


def wait_ready(log_path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> dict[str, str]:
    """Wait until the ``lclstream-api`` process ``proc`` serves its API and its callback listener; return
    their URLs by scheme (``https``: the API, ``http``: callbacks). Raise with its last log line if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        urls = listening_urls(log_path, proc.pid)
        if "https" in urls and "http" in urls:
            return urls
        if proc.poll() is not None:
            lines = log_path.read_text(errors="replace").strip().splitlines() if log_path.exists() else []
            errors = [line for line in lines if line.startswith("lclstream-api: ")]  # its one-line errors
            why = (errors or lines or ["no output"])[-1]
            raise RuntimeError(f"lclstream-api exited with code {proc.returncode} before listening: {why}")
        time.sleep(0.1)
    raise TimeoutError(f"lclstream-api did not start listening within {timeout:g} s (log: {log_path})")


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
    """Signal a service process and wait; SIGKILL it when it does not exit within ``grace`` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def cancel_jobs(service_config: Path) -> None:
    """Cancel every Psi-k job of the service with this config that is still running (buffers, mpiexec)."""
    psik = JobManager(load_settings(service_config).psik_config())
    for rec in psik.list(limit=100_000).jobs:
        if not rec.state.terminal:
            try:
                psik.cancel(rec.jobid)
            except Exception as exc:  # finished meanwhile
                logging.getLogger("lclstream_api").debug("cancel %s: %s", rec.jobid, exc)


class LocalDeployment:
    def __init__(self, root: Path, user: str = "demo", settings: dict[str, Any] | None = None) -> None:
        self.root = root
        self.user = user
        self.url = ""  # known once the service listens
        self.server_dir = root / "lclstream-api"
        self.user_dir = root / user
        pool = free_port() % 5000 + 20000
        self.settings = {"listen": "https://127.0.0.1:0", "callback_listen": "http://127.0.0.1:0",
                         "state_dir": str(root / "state"), "certified_config": str(self.server_dir),
                         "port_pool": {"start": pool, "end": pool + 99}, "poll_interval": 0.5,
                         "accounts": {user: getpass.getuser()},  # the user's jobs run as whoever runs this
                         **(settings or {})}
        self.config_path = root / "service.yaml"
        self.log_path = root / "api.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for client commands: venv on PATH, the user's certified identity."""
        return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "CERTIFIED_CONFIG": str(self.user_dir)}

    def make_identities(self) -> None:
        identity.init("lclstream-api", self.server_dir, hosts=HOSTS)
        identity.init(self.user, self.user_dir, hosts=HOSTS)

    def introduce_user(self) -> None:
        """The user's certificate, signed by the service, with the alias of the service's real URL."""
        introduction = intro.introduce(identity.public_key_pem(self.user_dir), self.user, self.server_dir,
                                       services={ALIAS: self.url})
        intro.add_intro(introduction, self.user_dir)

    def start(self, timeout: float = 60.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.make_identities()
        self.config_path.write_text(yaml.safe_dump(self.settings))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([str(BIN / "lclstream-api"), "--config", str(self.config_path)],
                                         stdout=log, stderr=log, env=self.env, start_new_session=True)
        self.url = wait_ready(self.log_path, self.proc, timeout)["https"]
        self.introduce_user()

    def client(self) -> TransferClient:
        return TransferClient(ALIAS, self.user_dir)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self.config_path.exists():
            cancel_jobs(self.config_path)

    def __enter__(self) -> LocalDeployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
