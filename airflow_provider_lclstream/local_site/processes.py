"""Service processes of the local site: started in their own session, logged to a file, stopped whole.

A service may start children that leave its process group (Airflow puts every task in a group of its
own), so stopping a service signals its group *and* every descendant seen when the stop began, waits,
then kills whatever is left. ``seen_pids()`` lets a test check afterwards that nothing survived.

    proc = ServiceProcess.start("psik-api", ["psik-api", ...], log_path, env)
    proc.wait_listening(port, timeout=60)
    proc.stop()
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

import psutil

log = logging.getLogger("lclstream.site")
BIN = Path(sys.executable).parent  # the commands of this environment (airflow, psik-api, ...)
PR_SET_PDEATHSIG = 1


class SiteError(RuntimeError):
    """A piece of the local site could not start; the message names it and ends with its log's tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """``preexec_fn``: the service gets SIGTERM when the site's process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


class ServiceProcess:
    """One long-running program of the site, the leader of its own session."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path
        self._seen: dict[int, float] = {}
        self._remember(psutil.Process(proc.pid))

    @classmethod
    def start(cls, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str],
              cwd: Path | None = None) -> ServiceProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent)
        log.info("%s: started, pid %d, log %s", name, proc.pid, log_path)
        return cls(name, proc, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def _remember(self, proc: psutil.Process) -> None:
        with contextlib.suppress(psutil.Error):
            self._seen[proc.pid] = proc.create_time()

    def remember_descendants(self) -> None:
        """Note every descendant alive now (``seen_pids`` and ``stop`` use the list)."""
        for child in _descendants(self.proc.pid):
            self._remember(child)

    def seen_pids(self) -> dict[int, float]:
        """pid -> creation time of the service and every descendant noted so far."""
        self.remember_descendants()
        return dict(self._seen)

    def fail(self, what: str) -> SiteError:
        return SiteError(f"{self.name} {what}; its log ({self.log_path}) ends with:\n{log_tail(self.log_path)}")

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float, interval: float = 0.2) -> float:
        """Poll ``ready()`` until it is true; raise if the process exits or ``timeout`` passes. Returns seconds."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise self.fail(f"exited with code {self.proc.returncode} before {what}")
            try:
                if ready():
                    return time.monotonic() - started
            except SiteError:  # ready() found the site broken (another of its processes exited): no use waiting
                raise
            except Exception as exc:  # not up yet: connection refused, 5xx while starting
                log.debug("%s: not %s yet: %r", self.name, what, exc)
            time.sleep(interval)
        raise self.fail(f"was not {what} within {timeout:g} s")

    def wait_listening(self, port: int, timeout: float = 60.0) -> float:
        def accepts() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        return self.wait_until(accepts, f"listening on 127.0.0.1:{port}", timeout)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the process group and every descendant, wait ``grace`` s, SIGKILL what is left. Idempotent."""
        self.remember_descendants()
        if self.running():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("%s: still running %.0f s after SIGTERM; killing it", self.name, grace)
        leftovers = alive(self._seen)
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _gone, still = psutil.wait_procs(leftovers, timeout=min(grace, 10.0))
        if self.running():
            still.append(psutil.Process(self.proc.pid))
        for proc in still:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(still, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        log.info("%s: stopped (exit %s)", self.name, self.proc.returncode)


def alive(seen: dict[int, float]) -> list[psutil.Process]:
    """The processes of ``seen`` (pid -> creation time) still running, zombies excluded."""
    out = []
    for pid, created in seen.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.Error:
            continue
    return out


def interrupt_on_signal(signum: int, _frame: FrameType | None) -> None:
    """A signal handler (SIGTERM) that stops the site the way Ctrl-C does."""
    raise KeyboardInterrupt(f"signal {signum}")
