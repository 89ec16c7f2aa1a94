"""Real ``lclstream-elog`` processes for tests: the ELog service on loopback with a real PKI, and DAQ runs.

    service = ElogService(tmp_path, pki)        # pki from tests.fixtures.pki.make_pki(server="elog", ...)
    service.start()                             # `lclstream-elog serve`; alias "elog" in every user directory
    with service.client("alice") as elog: ...
    service.restart()                           # same config, database and port
    daq = start_daq(["--instrument", "MFX", ...], env=pki.env("daq"))   # `lclstream-elog run ...` (Popen)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from elog.client import ElogClient
from tests.fixtures.pki import Pki
from tests.psik.helpers import wait_for

VENV_BIN = Path(sys.executable).parent
ELOG = str(VENV_BIN / "lclstream-elog")
ALIAS = "elog"
WRITER = "daq"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ with the venv first on PATH, no Kafka or ELog from the caller's shell, plus ``extra``."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    for name in ("LCLSTREAM_KAFKA_BOOTSTRAP", "LCLSTREAM_ELOG", "PMI_RANK", "PMI_SIZE", "PMI_FD", "HYDI_CONTROL_FD"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def elog(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``lclstream-elog ARGS`` to the end."""
    return subprocess.run([ELOG, *args], capture_output=True, text=True, timeout=timeout, env=env or cli_env(),
                          cwd=cwd, stdin=subprocess.DEVNULL, check=False)


def start_daq(args: list[str], env: dict[str, str] | None = None, stderr: Any = subprocess.PIPE,
              cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``lclstream-elog run ARGS`` in its own process group (stop it with ``interrupt``)."""
    return subprocess.Popen([ELOG, "run", *args], stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env=env or cli_env(), cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True)


def interrupt(proc: subprocess.Popen[str], sig: int = signal.SIGINT, timeout: float = 120) -> tuple[str, str]:
    """Send ``sig`` (Ctrl-C by default) and collect the output; kill the group if it does not end in time."""
    proc.send_signal(sig)
    return finish(proc, timeout)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[str, str]:
    """Wait for the process to end and return (stdout, stderr); past ``timeout`` kill it and fail with
    the end of what it wrote."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        out, err = proc.communicate(timeout=30)
        raise AssertionError(f"{' '.join(map(str, proc.args))} did not end within {timeout:g} s; it wrote:\n"
                             f"{(out or '')[-2000:]}\n{(err or '')[-4000:]}") from None
    return out, err or ""


def kill(proc: subprocess.Popen[Any]) -> None:
    """Teardown: the process group is gone, whatever the test did."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


class ElogService:
    """One ``lclstream-elog serve`` process on a port the OS picks (no race with other tests for a port);
    ``restart()`` keeps its config and database, and points the alias at the new port."""

    def __init__(self, root: Path, pki: Pki, writers: tuple[str, ...] = (WRITER,)) -> None:
        self.root = root
        self.pki = pki
        self.url = ""
        self.config_path = root / "elog.yaml"
        self.log_path = root / "elog.log"
        self.database = root / "state" / "elog.sqlite"
        root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump({
            "listen": "https://127.0.0.1:0", "database": "state/elog.sqlite",  # relative to the config's folder
            "certified_config": str(pki.server_dir), "writers": list(writers)}))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([ELOG, "serve", "--config", str(self.config_path)], stdout=log,
                                         stderr=subprocess.STDOUT, env=cli_env(), cwd="/",
                                         start_new_session=True)

        def listening() -> str | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"lclstream-elog serve exited {self.proc.returncode}: {self.log()[-3000:]}")
            for line in self.log()[offset:].splitlines():
                if line.startswith("{") and '"listening"' in line:
                    return str(json.loads(line)["url"])
            return None

        self.url = wait_for(listening, timeout, what="lclstream-elog serve to listen")
        self.pki.add_service_alias(ALIAS, self.url)

    def stop(self) -> int | None:
        """SIGTERM, as a service manager stops it; its exit status (None if it was not running)."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
            code = self.proc.returncode
        self.proc = None
        return code

    def restart(self) -> int | None:
        """Stop and start again; the exit status of the stopped process."""
        code = self.stop()
        self.start()
        return code

    def client(self, user: str) -> ElogClient:
        return ElogClient(ALIAS, self.pki.user_dir(user))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]
