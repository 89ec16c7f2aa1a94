"""Start and stop the real processes the certified tests talk to (bounded waits, always killed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0


def cli(*args: str, env: dict[str, str] | None = None, input: bytes | None = None,
        timeout: float = 60.0, prog: str = "certified") -> subprocess.CompletedProcess[str]:
    """Run a certified console script to completion."""
    return subprocess.run([str(BIN / prog), *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, input=input.decode() if input is not None else None)


@dataclass
class Served:
    url: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    def json_lines(self) -> list[dict[str, object]]:
        lines = []
        for line in self.log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                lines.append(record)
        return lines

    def access_lines(self) -> list[dict[str, object]]:
        return [r for r in self.json_lines() if "status" in r]

    def refusals(self) -> list[dict[str, object]]:
        return [r for r in self.json_lines() if r.get("event") == "handshake refused"]


def wait_for(predicate, what: str, timeout: float = START_TIMEOUT, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextmanager
def certified_serve(config_dir: Path, app: str, workdir: Path) -> Iterator[Served]:
    """``certified serve APP https://127.0.0.1:0`` as a subprocess; yields once it listens."""
    log = workdir / "serve.log"
    env = dict(os.environ, CERTIFIED_CONFIG=str(config_dir))
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "certified"), "serve", app, "https://127.0.0.1:0"],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def listening() -> str | None:
            for line in log.read_text().splitlines():
                if '"listening"' in line:
                    return json.loads(line)["url"]
            return None

        url = wait_for(listening, "certified serve listening", proc=proc)
        yield Served(url=url, port=int(url.rsplit(":", 1)[1]), log=log, proc=proc)
    finally:
        stop(proc)
