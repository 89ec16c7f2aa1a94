from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from buffer.config import TLSFiles
from tests.buffer.certs import make_ca, make_leaf
from tests.buffer.helpers import NngStream, stop_all


@pytest.fixture
def buffers(tmp_path: Path) -> Iterator[Callable[..., NngStream]]:
    """Start `nng-stream` processes; every one is stopped at the end of the test."""
    started: list[NngStream] = []

    def start(*args: str, name: str = "buffer", report_interval: float = 0.2,
              env: dict[str, str] | None = None) -> NngStream:
        b = NngStream(tmp_path, *args, name=name, report_interval=report_interval, env=env)
        started.append(b)
        return b

    try:
        yield start
    finally:
        for b in started:
            b.stop()


@pytest.fixture
def procs() -> Iterator[list]:
    """Spawn-started helper processes registered here are killed at the end of the test."""
    running: list = []
    try:
        yield running
    finally:
        stop_all(running)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TLSFiles]:
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert, ca_path = make_ca(d, "ca")
    rogue_key, rogue_cert, rogue_path = make_ca(d, "rogue-ca")
    rogue = make_leaf(d, "intruder", rogue_key, rogue_cert, rogue_path)
    return {
        "server": make_leaf(d, "buffer", ca_key, ca_cert, ca_path),
        "client": make_leaf(d, "client", ca_key, ca_cert, ca_path),
        # signed by another CA, but trusting ours: only the buffer's check can keep it out
        "intruder": TLSFiles(cert=rogue.cert, key=rogue.key, ca=str(ca_path)),
    }
