"""Status reporting: signed callbacks to a real HTTP receiver, the status file, and the status model."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from buffer.callbacks import SIGNATURE_HEADER, sign, verify
from buffer.config import CB_SECRET_ENV
from buffer.fifo import BoundedFifo
from buffer.status import BufferState, BufferStatus
from tests.buffer.helpers import NNG_STREAM, consume, join_all, produce, start, tcp_url
from tests.fixtures.terminal import Terminal

SECRET = "s3cret-for-tests"


class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTs; the first one is answered 500 to force a retry."""

    def __init__(self) -> None:
        self.posts: list[tuple[bytes, str | None]] = []
        self.failures_left = 1
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.failures_left > 0:
                    receiver.failures_left -= 1
                    self.send_response(500)
                else:
                    receiver.posts.append((body, self.headers.get(SIGNATURE_HEADER)))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.mark.parametrize("secret_from", ["option", "environment"])
def test_signed_callbacks_for_every_state_change(tmp_path, buffers, procs, receiver, secret_from):
    recv, send = tcp_url(), tcp_url()
    if secret_from == "option":
        buf = buffers("--recv", recv, "--send", send, "--callback", receiver.url, "--cb-secret", SECRET)
    else:  # kept out of the process list
        buf = buffers("--recv", recv, "--send", send, "--callback", receiver.url, env={CB_SECRET_ENV: SECRET})
    consumer = start(consume, send, str(tmp_path / "c.json"))
    producer = start(produce, recv, 0, 30, 1024, str(tmp_path / "p0.json"))
    procs += [consumer, producer]
    join_all([producer, consumer])
    assert buf.wait(60) == 0
    assert receiver.failures_left == 0, "the receiver's 500 should have been retried"
    states = []
    for body, header in receiver.posts:
        assert header is not None and header == sign(body, SECRET)
        assert verify(body, SECRET, header) and not verify(body, "wrong", header)
        states.append(BufferStatus.model_validate_json(body).state)
    assert states == [BufferState.WAITING, BufferState.STREAMING, BufferState.DRAINING, BufferState.DONE]
    done = BufferStatus.model_validate_json(receiver.posts[-1][0])
    assert done.messages_sent == 30 and done.consumers_total == 1


def test_unreachable_callback_never_stops_the_stream(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send, "--callback", "http://127.0.0.1:9/nobody", "--cb-secret", "x")
    consumer = start(consume, send, str(tmp_path / "c.json"))
    producer = start(produce, recv, 0, 30, 1024, str(tmp_path / "p0.json"))
    procs += [consumer, producer]
    join_all([producer, consumer])
    buf.wait_state(BufferState.DONE)
    assert buf.wait(60) == 0
    assert "callback http://127.0.0.1:9/nobody failed" in buf.stderr_path.read_text()


def test_status_file_is_valid_json_while_streaming(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send, report_interval=0.05)
    producer = start(produce, recv, 0, 400, 1024, str(tmp_path / "p0.json"), delay=0.002)
    consumer = start(consume, send, str(tmp_path / "c.json"))
    procs += [producer, consumer]
    reads = 0
    deadline = time.monotonic() + 60
    while buf.proc.poll() is None and reads < 2000 and time.monotonic() < deadline:
        try:
            text = buf.status_path.read_text()
        except FileNotFoundError:
            time.sleep(0.01)
            continue
        json.loads(text)  # never a half-written file
        reads += 1
    join_all([producer, consumer])
    assert buf.wait(30) == 0 and reads > 0
    assert buf.final().messages_sent == 400


def test_status_model_rejects_unknown_fields():
    with pytest.raises(ValueError, match="extra"):
        BufferStatus.model_validate({"state": "done", "pid": 1, "recv_url": "a", "send_url": "b",
                                     "started_at": 0, "time": 0, "surprise": 1})


def test_fifo_bounds_by_bytes_and_count():
    fifo = BoundedFifo(max_bytes=12, max_messages=3)
    fifo.put("a", 4)
    assert fifo.wait_for_room()  # 4 + room for another 4 <= 12
    fifo.put("b", 6)  # 10 + room for another 6 > 12: the receiver must wait
    waited = threading.Event()

    def receiver() -> None:
        fifo.wait_for_room()
        waited.set()

    t = threading.Thread(target=receiver)
    t.start()
    assert not waited.wait(0.3)
    assert fifo.get() == ("a", 4)
    fifo.release(4)
    assert waited.wait(5)
    t.join(5)
    fifo.put("c", 1)
    fifo.put("d", 1)  # 3 messages: full by count
    assert fifo._full()
    fifo.end_input()
    assert [fifo.get(), fifo.get(), fifo.get()] == [("b", 6), ("c", 1), ("d", 1)]
    assert fifo.get() is None


def test_progress_line_on_a_terminal(tmp_path, procs):
    """A person running nng-stream in a terminal sees one human line with counts and rates on stderr."""
    recv, send = tcp_url(), tcp_url()
    with Terminal() as term:
        buf = subprocess.Popen([NNG_STREAM, "--recv", recv, "--send", send, "--report-interval", "0.1"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=term.fd)
        try:
            consumer = start(consume, send, str(tmp_path / "c.json"))
            producer = start(produce, recv, 0, 30, 1024, str(tmp_path / "p0.json"), delay=0.02)
            procs += [consumer, producer]
            join_all([producer, consumer])
            assert buf.wait(60) == 0
        finally:
            if buf.poll() is None:
                buf.kill()
                buf.wait(10)
        shown = term.read_all()
    assert b"\rdone" in shown and b"producers 0/1" in shown and b"MB/s" in shown
    assert b"out 30 msg" in shown
