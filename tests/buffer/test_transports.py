"""The socket side (tcp/ipc/tls+tcp in nng's wire format): messages passed on without copying, ipc, TLS
sides mixed with plain ones, ordinary pynng peers, and peers that do not speak the pipeline protocol."""

from __future__ import annotations

import socket
import struct

import pytest

from buffer.sp_wire import PULL0, PUSH0, greeting
from buffer.status import BufferState
from tests.buffer.helpers import (
    consume,
    join_all,
    produce,
    pynng_pull,
    pynng_push,
    read_json,
    start,
    tcp_url,
    tls_dict,
)


def _received(paths) -> list[tuple[int, int]]:
    assert all(read_json(p)["end"] for p in paths), "every consumer must see the end of the stream"
    return [tuple(m) for p in paths for m in read_json(p)["received"]]


def _stream(tmp_path, procs, buf, recv: str, send: str, producers: int, count: int, size: int,
            consumers: int = 2, tls: dict | None = None, connections: int = 1) -> list[tuple[int, int]]:
    """Consumers first (all connected), then producers; checks every message arrived exactly once."""
    results = [tmp_path / f"c{i}.json" for i in range(consumers)]
    cons = [start(consume, send, str(r), tls=tls, connections=connections) for r in results]
    procs += cons
    buf.wait_status(lambda s: s.consumers_connected == consumers * connections, what="consumers connected")
    prods = [start(produce, recv, p, count, size, str(tmp_path / f"p{p}.json"), tls=tls) for p in range(producers)]
    procs += prods
    join_all(prods + cons)
    assert all(read_json(tmp_path / f"p{p}.json")["confirmed"] for p in range(producers))
    got = _received(results)
    assert len(got) == len(set(got)), "a message was delivered twice"
    assert set(got) == {(p, s) for p in range(producers) for s in range(count)}
    return got


def test_ipc_both_sides_exactly_once_and_passed_on_without_copies(tmp_path, buffers, procs):
    recv, send = f"ipc://{tmp_path}/recv.ipc", f"ipc://{tmp_path}/send.ipc"
    buf = buffers("--recv", recv, "--send", send, "--producers", "2")
    buf.wait_state(BufferState.WAITING)
    _stream(tmp_path, procs, buf, recv, send, producers=2, count=200, size=64 * 1024)
    assert buf.wait(30) == 0
    final = buf.final()
    assert final.messages_received == final.messages_sent == 400
    # consumers were connected and keeping up: some messages went straight from producer to consumer
    assert final.messages_direct > 0
    assert not (tmp_path / "recv.ipc").exists(), "the buffer removes its socket files"


@pytest.mark.parametrize("recv_scheme", ["tcp", "ipc"])
def test_tcp_and_ipc_mixed_each_side_frames_its_own_way(tmp_path, buffers, procs, recv_scheme):
    ipc, tcp = f"ipc://{tmp_path}/side.ipc", tcp_url()
    recv, send = (ipc, tcp) if recv_scheme == "ipc" else (tcp, ipc)
    buf = buffers("--recv", recv, "--send", send, "--producers", "2")
    buf.wait_state(BufferState.WAITING)
    _stream(tmp_path, procs, buf, recv, send, producers=2, count=100, size=32 * 1024)
    assert buf.wait(30) == 0
    final = buf.final()
    assert final.messages_sent == 200 and final.messages_direct > 0


def test_direct_wait_zero_stores_every_message(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send, "--producers", "2", "--direct-wait", "0")
    buf.wait_state(BufferState.WAITING)
    _stream(tmp_path, procs, buf, recv, send, producers=2, count=100, size=16 * 1024)
    assert buf.wait(30) == 0
    final = buf.final()
    assert final.messages_sent == 200 and final.messages_direct == 0


@pytest.mark.parametrize("tls_side", ["send", "recv", "both"])
def test_tls_sides_mixed_with_plain_ones(tmp_path, buffers, procs, pki, tls_side):
    recv = tcp_url("tls+tcp" if tls_side in ("recv", "both") else "tcp")
    send = tcp_url("tls+tcp" if tls_side in ("send", "both") else "tcp")
    server = pki["server"]
    buf = buffers("--recv", recv, "--send", send, "--cert", server.cert, "--key", server.key, "--ca", server.ca,
                  "--producers", "2")
    buf.wait_state(BufferState.WAITING)
    _stream(tmp_path, procs, buf, recv, send, producers=2, count=60, size=32 * 1024, tls=tls_dict(pki["client"]))
    assert buf.wait(30) == 0
    final = buf.final()
    assert final.messages_sent == 120 and final.messages_direct > 0, "handed over without storing (one copy)"


@pytest.mark.parametrize("scheme", ["tcp", "tls+tcp"])
def test_ordinary_pynng_peers_with_plain_recv(tmp_path, buffers, procs, pki, scheme):
    """pynng's own Push0/Pull0 (nng's TLS engine on tls+tcp), ending with the end marker, received with the
    plain ``Socket.recv()`` (which cannot receive a zero-length message: pynng issue 104)."""
    recv, send = tcp_url(scheme), tcp_url(scheme)
    server = pki["server"]
    tls_args = ["--cert", server.cert, "--key", server.key, "--ca", server.ca] if scheme == "tls+tcp" else []
    buf = buffers("--recv", recv, "--send", send, "--producers", "2", *tls_args)
    buf.wait_state(BufferState.WAITING)
    tls = tls_dict(pki["client"]) if tls_args else None
    results = [tmp_path / f"c{i}.json" for i in range(2)]
    consumers = [start(pynng_pull, send, str(r), tls=tls) for r in results]
    procs += consumers
    buf.wait_status(lambda s: s.consumers_connected == 2, what="consumers connected")
    producers = [start(pynng_push, recv, p, 40, 8 * 1024, tls=tls) for p in range(2)]
    procs += producers
    join_all(producers + consumers)
    got = _received(results)
    assert sorted(got) == [(p, s) for p in range(2) for s in range(40)]
    assert buf.wait(30) == 0
    assert buf.final().end_markers_sent == 2


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_peers_that_are_not_pipeline_producers_are_dropped(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send)
    buf.wait_state(BufferState.WAITING)
    with _raw(recv) as http:  # not nng at all
        http.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert http.recv(8) == greeting(PULL0)
        assert _closed_by_peer(http)
    with _raw(recv) as puller:  # nng, but a consumer dialling the producer side
        puller.sendall(greeting(PULL0))
        assert puller.recv(8) == greeting(PULL0)  # the buffer's own greeting: it is a Pull0 there
        assert _closed_by_peer(puller)
    st = buf.wait_status(lambda s: s.connections_refused == 2, what="both refusals counted")
    assert st.state is BufferState.WAITING and st.producers_total == 0
    log = buf.stderr_path.read_text()
    assert "refused a producer connection from 127.0.0.1:" in log and "the peer is not an nng socket" in log
    assert "the peer speaks protocol 0x51, expected 0x50" in log
    _stream(tmp_path, procs, buf, recv, send, producers=1, count=20, size=1024, consumers=1)
    assert buf.wait(30) == 0


def test_message_over_max_message_size_closes_that_producer_only(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send, "--max-message-size", "1K", "--producers", "2")
    buf.wait_state(BufferState.WAITING)
    with _raw(recv) as big:
        big.sendall(greeting(PUSH0))
        assert big.recv(8) == greeting(PULL0)
        big.sendall(struct.pack(">Q", 4096) + b"x" * 4096)
        assert _closed_by_peer(big)
    buf.wait_status(lambda s: s.producers_total == 1 and s.producers_connected == 0, what="the big producer gone")
    assert "it announced a 4096-byte message, over --max-message-size 1024" in buf.stderr_path.read_text()
    _stream(tmp_path, procs, buf, recv, send, producers=1, count=20, size=1000, consumers=1)
    assert buf.wait(30) == 0
    final = buf.final()
    assert final.messages_received == final.messages_sent == 20 and final.producers_total == 2


@pytest.mark.parametrize("scheme", ["tcp", "tls+tcp"])
def test_a_consumer_with_two_connections_gets_everything_once_and_ends(tmp_path, buffers, procs, pki, scheme):
    """Each connection ends with its own marker; the consumer stops once all of its connections ended."""
    recv, send = tcp_url(scheme), tcp_url(scheme)
    tls_args = ["--cert", pki["server"].cert, "--key", pki["server"].key, "--ca", pki["server"].ca] \
        if scheme == "tls+tcp" else []
    buf = buffers("--recv", recv, "--send", send, "--producers", "2", *tls_args)
    buf.wait_state(BufferState.WAITING)
    tls = tls_dict(pki["client"]) if tls_args else None
    got = _stream(tmp_path, procs, buf, recv, send, producers=2, count=150, size=48 * 1024, tls=tls,
                  connections=2)
    assert len(got) == 300
    assert buf.wait(30) == 0
    final = buf.final()
    assert final.consumers_total == 4 and final.end_markers_sent >= 4 and final.consumers_connected == 0
