"""States and exit codes of `nng-stream`: refusal while draining, idle timeout, SIGTERM, bad input."""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest

from buffer.status import BufferState
from tests.buffer.helpers import NNG_STREAM, consume, join_all, produce, read_json, start, tcp_url


def test_producer_refused_while_draining(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send)
    first = start(produce, recv, 0, 20, 1024, str(tmp_path / "p0.json"))
    procs.append(first)
    join_all([first])
    buf.wait_state(BufferState.DRAINING)  # no consumer yet: the 20 messages wait in the buffer
    latecomer = start(produce, recv, 1, 5, 1024, str(tmp_path / "p1.json"), send_timeout=3.0)
    procs.append(latecomer)
    join_all([latecomer])
    late = read_json(tmp_path / "p1.json")
    assert late["sent"] == 0 and "took nothing" in late["error"] and late["confirmed"] is False
    assert buf.status().producers_total == 1
    assert "stopped listening for producers" in buf.stderr_path.read_text()
    consumer = start(consume, send, str(tmp_path / "c.json"))
    procs.append(consumer)
    join_all([consumer])
    assert buf.wait(30) == 0
    got = read_json(tmp_path / "c.json")["received"]
    assert sorted(map(tuple, got)) == [(0, s) for s in range(20)]


def test_idle_timeout_fails_with_clear_message(buffers):
    buf = buffers("--recv", tcp_url(), "--send", tcp_url(), "--idle-timeout", "1")
    assert buf.wait(30) == 1
    assert buf.final().state is BufferState.FAILED
    assert "no producer connected within 1 seconds" in buf.stderr_path.read_text()


def test_sigterm_cancels_with_messages_buffered(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send)
    producer = start(produce, recv, 0, 10, 1024, str(tmp_path / "p0.json"))
    procs.append(producer)
    join_all([producer])
    buf.wait_status(lambda s: s.messages_buffered == 10, what="10 messages buffered")
    buf.proc.send_signal(signal.SIGTERM)
    assert buf.wait(30) == 3
    final = buf.final()
    assert final.state is BufferState.CANCELED and final.reason == "SIGTERM received"
    with socket.socket() as s:  # the listener was closed: the port can be listened on again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(recv.rsplit(":", 1)[1])))


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NNG_STREAM, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "expected"), [
    (["--recv", "tcp//127.0.0.1:1", "--send", "tcp://127.0.0.1:2"], "--recv: 'tcp//127.0.0.1:1' is not a URL"),
    (["--recv", "udp://127.0.0.1:1", "--send", "tcp://127.0.0.1:2"], "has scheme 'udp'"),
    (["--recv", "tcp://127.0.0.1", "--send", "tcp://127.0.0.1:2"], "has no port"),
    (["--recv", "tcp://127.0.0.1:1", "--send", "tcp://127.0.0.1:2", "--send-zmq", "tcp://127.0.0.1:3"],
     "give exactly one output"),
    (["--recv", "tls+tcp://127.0.0.1:1", "--send", "tcp://127.0.0.1:2"], "needs cert, key and ca"),
    (["--recv", "tcp://127.0.0.1:1", "--send", "tcp://127.0.0.1:2", "--max-bytes", "lots"], "is not a size"),
    (["--recv", "tcp://127.0.0.1:1", "--send", "tcp://127.0.0.1:2", "--max-bytes", "0"],
     "--max-bytes: Input should be greater than 0"),
    (["--send", "tcp://127.0.0.1:2"], "the following arguments are required: --recv"),
])
def test_bad_input_exits_2_with_one_sentence(args, expected):
    result = _run_cli(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_port_in_use_exits_2():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = _run_cli("--recv", f"tcp://127.0.0.1:{port}", "--send", tcp_url())
    assert result.returncode == 2
    assert result.stderr.strip() == f"nng-stream: cannot listen on --recv URL tcp://127.0.0.1:{port}: " \
                                    "the address is already in use"
