"""A real LCLStream-API process on loopback, with a real PKI and the local Psi-k backend.

The service binds port 0 on its first start and says which ports it got (``wait_ready``); a restart
keeps them. Picking a free port here and probing it raced with other processes on the machine.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lclstream_api.client import TransferClient
from lclstream_api.local import cancel_jobs, stop_process, wait_ready
from tests.fixtures.pki import Pki

VENV_BIN = Path(sys.executable).parent
ALIAS = "lclstream"


def synthetic_config(events: int = 40, batch: int = 4, compression: str = "bitshuffle_lz4",
                     seed: int = 7) -> dict[str, Any]:
    """A small synthetic run: pulse ids (to check completeness) and a small waveform per event."""
    return {
        "source_identifier": f"exp=lclstest:run={seed}",
        "event_source": {"type": "SyntheticEventSource", "number_of_events": events, "seed": seed},
        "data_sources": {"pulse_id": {"type": "SyntheticScalar", "kind": "pulse_id"},
                         "tof": {"type": "SyntheticWaveformDigitizer", "channels": 2, "samples": 256}},
        "processing_pipeline": [{"type": "BatchProcessingPipeline", "batch_size": batch}],
        "data_serializer": {"type": "HDF5Serializer", "fields": {"pulse_id": "/data/pulse_id", "tof": "/data/tof"},
                            "compression": compression},
        "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": "/nonexistent"}],
    }


def env_with_venv(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.update(extra or {})
    return env


@dataclass
class Service:
    """One lclstream-api process; ``restart()`` keeps its config, database and ports."""

    root: Path
    pki: Pki
    overrides: dict[str, Any] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port: int | None = None  # known after the first start
        pool_start = random.randrange(20000, 30000 - 60)
        self.settings: dict[str, Any] = {
            "listen": "https://127.0.0.1:0",
            "callback_listen": "http://127.0.0.1:0",
            "state_dir": str(self.root / "state"),
            "certified_config": str(self.pki.server_dir),
            "port_pool": {"start": pool_start, "end": pool_start + 59},
            "admins": ["admin"],
            "accounts": {name: getpass.getuser() for name in self.pki.users},  # jobs run as the test's account
            "poll_interval": 0.5,
            **self.overrides,
        }
        self.config_path = self.root / "service.yaml"
        self.config_path.write_text(yaml.safe_dump(self.settings))
        self.log_path = self.root / "lclstream-api.log"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "lclstream-api"), "--config", str(self.config_path)],
                stdout=log, stderr=log, env=env_with_venv(self.extra_env), start_new_session=True)
        urls = wait_ready(self.log_path, self.proc)
        if self.port is None:  # first start: keep the ports the service got, for restarts and for clients
            self.settings.update(listen=urls["https"], callback_listen=urls["http"])
            self.config_path.write_text(yaml.safe_dump(self.settings))
            self.port = int(urls["https"].rsplit(":", 1)[1])
            self.pki.add_service_alias(ALIAS, urls["https"])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, user: str) -> TransferClient:
        return TransferClient(ALIAS, self.pki.user_dir(user))

    def cleanup_jobs(self) -> None:
        """Cancel every Psi-k job this service started that is still running (buffers, mpiexec)."""
        cancel_jobs(self.config_path)

    @contextlib.contextmanager
    def running(self) -> Iterator[Service]:
        """Started for the block; stopped, with every job it started canceled, whatever happens."""
        try:
            self.start()
            yield self
        finally:
            self.stop()
            self.cleanup_jobs()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_for(predicate: Any, timeout: float, interval: float = 0.3, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value; bounded in time."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout} s (last: {last!r})")
