"""A whole LCLStream-API deployment on this machine's loopback, for the demo and the benchmarks.

    with LocalDeployment(Path(tmp), user="alice") as deployment:
        with deployment.client() as api:
            view = api.request(config, {"ranks": 2})

Creates a service identity and a user identity with ``certified``, starts ``lclstream-api`` (jobs on
the local Psi-k backend) and, on exit, stops it and cancels every job it started.
"""

from __future__ import annotations

import getpass
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


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Return once something accepts on 127.0.0.1:``port``; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lclstream-api exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"lclstream-api did not listen on port {port} within {timeout:g} s")


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
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.server_dir = root / "lclstream-api"
        self.user_dir = root / user
        pool = free_port() % 5000 + 20000
        self.settings = {"listen": self.url, "callback_listen": f"http://127.0.0.1:{free_port()}",
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
        wait_listening(self.port, self.proc, timeout)

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
