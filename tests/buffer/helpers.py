"""Real processes for the buffer tests: `nng-stream` subprocesses, spawn-started producers and consumers.

Every message is ``<producer u32><seq u32>`` followed by a payload derived from both, so a consumer
can check ordering, duplicates and content.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from buffer.config import TLSFiles
from buffer.end_marker import is_end
from buffer.status import BufferState, BufferStatus
from tests.fixtures.net import free_port

HEADER = struct.Struct("<II")
SPAWN = multiprocessing.get_context("spawn")
NNG_STREAM = shutil.which("nng-stream") or str(Path(sys.executable).with_name("nng-stream"))


def tcp_url(scheme: str = "tcp") -> str:
    return f"{scheme}://127.0.0.1:{free_port()}"


def make_message(producer: int, seq: int, size: int) -> bytes:
    fill = bytes([(producer * 31 + seq) % 251 + 1])
    return HEADER.pack(producer, seq) + fill * max(size - HEADER.size, 0)


def check_message(data: bytes) -> tuple[int, int]:
    producer, seq = HEADER.unpack_from(data)
    if data != make_message(producer, seq, len(data)):
        raise AssertionError(f"message {producer}/{seq} has corrupt content")
    return producer, seq


# -- process bodies (module level so that spawn can import them) ------------------------------------

def produce(url: str, producer: int, count: int, size: int, result: str, delay: float = 0.0,
            tls: dict | None = None, send_timeout: float | None = None) -> None:
    from buffer.client import Producer, StreamTimeout

    out: dict[str, Any] = {"sent": 0, "confirmed": False, "error": None}
    try:
        p = Producer(url, tls=TLSFiles(**tls) if tls else None, send_timeout=send_timeout, close_timeout=60)
        try:
            for seq in range(count):
                p.send(make_message(producer, seq, size))
                out["sent"] = seq + 1
                if delay:
                    time.sleep(delay)
        except (StreamTimeout, ConnectionError) as exc:  # ConnectionError: a tls+tcp buffer refused it
            out["error"] = str(exc)
            p.abort()
        out["confirmed"] = p.close()
    finally:
        Path(result).write_text(json.dumps(out))


def push_and_hang_up(url: str, producer: int, count: int, size: int, pause: float, tls: dict | None = None) -> None:
    """A bare Push0 producer (like the streamer's NNG handler): ``count`` messages, then close, no end marker."""
    import pynng

    from buffer.tls import tls_config

    sock = pynng.Push0(send_timeout=10_000, send_buffer_size=0)
    try:
        if tls:
            sock.tls_config = tls_config(TLSFiles(**tls), server=False, server_name="127.0.0.1")
        sock.dial(url, block=True)
        for seq in range(count):
            sock.send(make_message(producer, seq, size))
            time.sleep(pause)
    finally:
        sock.close()


def pynng_push(url: str, producer: int, count: int, size: int, tls: dict | None = None) -> None:
    """An ordinary pynng Push0 producer: its messages, the end marker, then it waits for the hang-up."""
    import threading

    import pynng

    from buffer.end_marker import END_MARKER
    from buffer.tls import tls_config

    hung_up = threading.Event()
    with pynng.Push0(send_timeout=30_000) as sock:
        if tls:
            sock.tls_config = tls_config(TLSFiles(**tls), server=False, server_name="127.0.0.1")
        sock.add_post_pipe_remove_cb(lambda _pipe: hung_up.set())
        sock.dial(url, block=True)
        for seq in range(count):
            sock.send(make_message(producer, seq, size))
        sock.send(END_MARKER)
        assert hung_up.wait(30), "the buffer did not confirm the end by hanging up"


def pynng_pull(url: str, result: str, tls: dict | None = None, timeout: float = 60.0) -> None:
    """An ordinary pynng Pull0 consumer using the plain ``recv()`` until the end marker."""
    import pynng

    from buffer.tls import tls_config

    got = []
    with pynng.Pull0(recv_timeout=int(timeout * 1000), recv_max_size=0) as sock:
        if tls:
            sock.tls_config = tls_config(TLSFiles(**tls), server=False, server_name="127.0.0.1")
        sock.dial(url, block=False)
        while not is_end(data := sock.recv()):
            got.append(check_message(data))
    Path(result).write_text(json.dumps({"received": got, "end": True}))


def consume(url: str, result: str, delay: float = 0.0, tls: dict | None = None, timeout: float = 60.0,
            log: str | None = None, connections: int = 1) -> None:
    """Receive until the end marker; ``log`` gets one line per message as it arrives (for killed consumers)."""
    from buffer.client import messages

    got: list[tuple[int, int]] = []
    logf = open(log, "w", buffering=1) if log else None  # noqa: SIM115 - closed below
    try:
        for data in messages(url, tls=TLSFiles(**tls) if tls else None, timeout=timeout, connections=connections):
            ident = check_message(data)
            got.append(ident)
            if logf:
                logf.write(f"{ident[0]} {ident[1]}\n")
            if delay:
                time.sleep(delay)
        Path(result).write_text(json.dumps({"received": got, "end": True}))
    finally:
        if logf:
            logf.close()


def consume_zmq(url: str, result: str, timeout: float = 60.0) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    sock.connect(url)
    got = []
    try:
        while True:
            data = sock.recv()
            if is_end(data):
                break
            got.append(check_message(data))
        Path(result).write_text(json.dumps({"received": got, "end": True}))
    finally:
        sock.close(0)
        ctx.term()


# -- process handling -----------------------------------------------------------------------------

def start(target: Any, *args: Any, **kwargs: Any) -> multiprocessing.process.BaseProcess:
    proc = SPAWN.Process(target=target, args=args, kwargs=kwargs, daemon=True)
    proc.start()
    return proc


def join_all(procs: Iterable[multiprocessing.process.BaseProcess], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(deadline - time.monotonic(), 0.1))
        assert not p.is_alive(), f"{p.name} still running after {timeout}s"
        assert p.exitcode == 0, f"{p.name} exited with {p.exitcode}"


def stop_all(procs: Iterable[multiprocessing.process.BaseProcess]) -> None:
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class NngStream:
    """One `nng-stream` process with a status file; always stopped by ``stop()``."""

    def __init__(self, tmp: Path, *args: str, name: str = "buffer", report_interval: float = 0.2,
                 env: dict[str, str] | None = None) -> None:
        self.status_path = tmp / f"{name}-status.json"
        self.stdout_path = tmp / f"{name}.stdout"
        self.stderr_path = tmp / f"{name}.stderr"
        cmd = [NNG_STREAM, *args, "--status-file", str(self.status_path), "--report-interval", str(report_interval)]
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err,
                                         env=None if env is None else {**os.environ, **env})

    def status(self) -> BufferStatus | None:
        try:
            return BufferStatus.model_validate_json(self.status_path.read_text())
        except (OSError, ValueError):
            return None

    def wait_status(self, predicate: Any, timeout: float = 30.0, what: str = "status") -> BufferStatus:
        holder: list[BufferStatus] = []

        def check() -> bool:
            if self.proc.poll() is not None and not holder:
                st = self.status()
                if st is None or not predicate(st):
                    raise AssertionError(f"nng-stream exited ({self.proc.returncode}) before {what}: "
                                         f"{self.stderr_path.read_text()[-2000:]}")
            st = self.status()
            if st is not None and predicate(st):
                holder.append(st)
                return True
            return False

        wait_for(check, timeout, what)
        return holder[0]

    def wait_state(self, state: BufferState, timeout: float = 30.0) -> BufferStatus:
        return self.wait_status(lambda s: s.state is state, timeout, f"state {state.value}")

    def lines(self) -> list[BufferStatus]:
        return [BufferStatus.model_validate_json(line) for line in self.stdout_path.read_text().splitlines() if line]

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)

    def final(self) -> BufferStatus:
        st = self.status()
        assert st is not None
        return st

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def tls_dict(files: TLSFiles) -> dict:
    return files.model_dump()
