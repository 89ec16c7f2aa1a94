"""The data path as an attacker on the same machine sees it: only a transfer's producers push, only its
owner and readers pull, nobody else can end the stream, and no length prefix makes the buffer allocate.

Real processes on loopback: lclstream-api with its Psi-k jobs (nng-stream, mpiexec lclstreamer), real
per-transfer certificates, attackers speaking raw TCP, TLS (Python's ssl) and pynng. Each refusal is
asserted by the connection's fate and by the buffer's log line, and nothing is lost for alice.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
import stat
import struct
from pathlib import Path

import numpy as np
import pynng
import pytest
import yaml

from buffer.client import Producer, StreamRefused, messages
from buffer.config import TLSFiles
from buffer.end_marker import END_MARKER
from buffer.memory import resident_bytes
from buffer.sp_wire import PULL0, PUSH0, greeting
from buffer.status import BufferState
from buffer.tls import client_context
from certified.stream_ca import StreamCA
from lclstream_api.batches import stream
from lclstream_api.client import TransferAPIError
from lclstream_api.settings import load_settings
from lclstream_api.transport import open_transfer
from psik.jobdir import JobDir
from psik.manager import JobManager
from tests.buffer.helpers import NngStream, check_message, make_message
from tests.fixtures.net import free_port
from tests.fixtures.pki import Pki
from tests.lclstream_api.conftest import api_pki  # noqa: F401
from tests.lclstream_api.harness import Service, synthetic_config, wait_for
from tests.lclstream_api.test_transfers import gated_mpirun

EVENTS, RANKS = 24, 2


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def _closed(sock: socket.socket, timeout: float = 10.0) -> bool:
    """True once the peer closed or reset the connection (it never answers anything else)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


def _raw_greet_and_hang_up(url: str, protocol: int) -> None:
    """What used to end a stream: connect, greet as nng would, hang up at once."""
    with socket.create_connection(_host_port(url), timeout=10) as sock:
        sock.sendall(greeting(protocol))


def _tls(url: str, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(_host_port(url), timeout=10)
    return context.wrap_socket(raw, server_hostname=_host_port(url)[0])


def _buffer_log(service: Service, jobid: str) -> str:
    psik = JobManager(load_settings(service.config_path).psik_config())
    rec = psik.get(jobid)
    return JobDir.find(psik.prefix, jobid).log_path("stderr", rec.jobndx).read_text(errors="replace")


def _pynng_pull_gets_nothing(url: str, tls: pynng.TLSConfig | None) -> bool:
    with pynng.Pull0(recv_timeout=3000, recv_max_size=0) as sock:
        if tls is not None:
            sock.tls_config = tls
        sock.dial(url, block=False)
        try:
            sock.recv()
        except pynng.Timeout:
            return True
    return False


def _unverifying(tmp_path: Path, cert_pem: str, key_pem: str) -> ssl.SSLContext:
    """An attacker's TLS client: presents a certificate, verifies nothing about the buffer."""
    cert, key = tmp_path / "attacker.crt", tmp_path / "attacker.key"
    cert.write_text(cert_pem)
    key.write_text(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cert, key)
    return ctx


def _pynng_tls(cert: str, key: str, ca: str) -> pynng.TLSConfig:
    return pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT, server_name="127.0.0.1", ca_string=ca,
                           own_cert_string=cert, own_key_string=key, auth_mode=pynng.TLSConfig.AUTH_MODE_REQUIRED)


def _pulse_ids(batches) -> list[int]:
    return sorted(int(v) for b in batches for v in np.asarray(b.data["pulse_id"]).ravel())


def test_nobody_but_its_producers_and_readers_can_touch_alices_stream(tmp_path: Path, api_pki: Pki) -> None:  # noqa: F811
    gate, launcher = gated_mpirun(tmp_path)
    backends = {"default": {"type": "local"}, "gated": {"type": "local", "mpirun": str(launcher)}}
    with Service(tmp_path / "svc", api_pki, overrides={"backends": backends}).running() as service, \
            service.client("alice") as alice, \
            service.client("bob") as bob, service.client("admin") as admin:
        view = alice.request(synthetic_config(events=EVENTS, batch=4), {"ranks": RANKS, "backend": "gated"})
        assert view.protected and view.url.startswith("tls+tcp://")
        recv_url, send_url = _recv_url(service, view.id), view.url

        # -- credentials: only the owner (and readers) get them; others as if it did not exist
        with pytest.raises(TransferAPIError) as hidden:
            bob.credentials(view.id)
        assert hidden.value.status == 404
        with pytest.raises(TransferAPIError) as admin_refused:
            admin.credentials(view.id)
        assert admin_refused.value.status == 403 and "not read its data" in str(admin_refused.value)
        assert f"transfer {view.id}: refused data credentials to bob" in service.log_text()
        creds, alice_tls = open_transfer(view.id, alice)
        assert creds.identity == "alice" and creds.server_name == "127.0.0.1" and alice_tls is not None

        # bob's own transfer gives him a perfectly valid consumer certificate, from another CA
        own = bob.request(synthetic_config(events=8, seed=99), {"ranks": 1, "backend": "gated"})
        bobs, bob_tls = open_transfer(own.id, bob)
        assert bob_tls is not None and bobs.cert_pem and bobs.key_pem and bobs.ca_pem
        with pytest.raises(StreamRefused, match="is not the buffer this certificate authority vouches for"):
            next(messages(send_url, context=bob_tls, timeout=20))  # his client does not trust alice's buffer
        bob_tls = _unverifying(tmp_path, bobs.cert_pem, bobs.key_pem)  # so he stops checking it

        folder = Path(service.settings["state_dir"]) / "transfers" / view.id
        producer_tls = client_context(folder / "ca.crt", folder / "producer.crt", folder / "producer.key")

        # -- bob pulls nothing: over tcp, over tls with his certificate, over pynng, with a producer cert
        assert _pynng_pull_gets_nothing(send_url.replace("tls+tcp://", "tcp://"), None)
        assert _pynng_pull_gets_nothing(send_url, _pynng_tls(bobs.cert_pem, bobs.key_pem,
                                                             creds.ca_pem or ""))
        with pytest.raises(StreamRefused, match="refused this connection"):
            next(messages(send_url, context=bob_tls, timeout=20))
        with pytest.raises(StreamRefused, match="refused this connection"):
            next(messages(send_url, context=producer_tls, timeout=20))  # a producer cannot pull

        # -- nobody but the producers pushes, and nobody else's hang-up ends the stream
        for _ in range(RANKS + 1):  # more "finished producers" than the buffer waits for
            _raw_greet_and_hang_up(recv_url, PUSH0)
        for context in (bob_tls, alice_tls):  # bob's certificate; alice's consumer certificate cannot push
            intruder = Producer(recv_url, context=context, send_timeout=10)
            with pytest.raises(StreamRefused, match="refused this connection"):
                intruder.send(make_message(9, 0, 64))
            intruder.abort()
        with pynng.Push0(send_timeout=3000) as intruder:
            intruder.tls_config = _pynng_tls(bobs.cert_pem, bobs.key_pem, creds.ca_pem or "")
            intruder.dial(recv_url, block=False)
            with pytest.raises(pynng.Timeout):
                intruder.send(make_message(9, 2, 64))
        refusals = 2 + 2 + (RANKS + 1) + 3  # pulls, pushes as above
        status = wait_for(lambda: (m := alice.status(view.id).metrics) is not None
                          and m.connections_refused >= refusals and m, 60, what="every attempt refused")
        assert status.state is BufferState.WAITING, "an intruder's hang-up must not start draining"
        assert status.producers_total == 0 and status.consumers_total == 0 and status.messages_received == 0

        # -- alice receives every event once the real producers run
        batches = stream(view.id, client=alice, idle_timeout=90)
        gate.touch()
        got = list(batches)
        assert batches.complete(), batches.receiver.ledger.describe_gaps()
        assert _pulse_ids(got) == list(range(EVENTS))
        final = wait_for(lambda: (v := alice.status(view.id)).state.terminal and v, 90, what="terminal")
        assert final.state.value == "completed", final.reason
        assert final.metrics is not None and final.metrics.producers_total == RANKS
        # every message the producers sent (their data and their end envelopes), nothing else
        assert final.metrics.consumers_total == 1 and final.metrics.messages_received == EVENTS // 4 + RANKS

        log = _buffer_log(service, final.jobs["buffer"].jobid)
        assert "refused a consumer connection from 127.0.0.1:" in log
        assert "certificate verify failed" in log  # bob's certificate, from his own transfer's CA
        assert "(CN=producers of" in log and "only consumer certificates may connect here" in log
        assert "refused a producer connection from 127.0.0.1:" in log
        assert "(CN=alice,OU=consumer" in log and "only producer certificates may connect here" in log
        assert "Traceback" not in log
        bob.cancel(own.id)


def _recv_url(service: Service, transfer_id: str) -> str:
    """Where the transfer's producers push (the record has it; a client's view does not)."""
    with sqlite3.connect(Path(service.settings["state_dir"]) / "transfers.sqlite") as db:
        record = db.execute("SELECT record FROM transfers WHERE id = ?", (transfer_id,)).fetchone()[0]
    return str(yaml.safe_load(record)["recv_url"])


def test_credentials_are_made_per_caller_and_the_ca_key_stays_with_the_service(tmp_path: Path,
                                                                               api_pki: Pki) -> None:  # noqa: F811
    with Service(tmp_path / "svc", api_pki).running() as service, service.client("alice") as alice, \
            service.client("bob") as bob:
        view = alice.request(synthetic_config(events=8), {"readers": ["bob"], "idle_timeout": 60})
        mine, theirs = alice.credentials(view.id), bob.credentials(view.id)
        assert mine.identity == "alice" and theirs.identity == "bob" and mine.ca_pem == theirs.ca_pem
        assert mine.cert_pem != theirs.cert_pem and mine.key_pem != theirs.key_pem
        assert "OU=consumer" in _subject(theirs.cert_pem or "") and "CN=bob" in _subject(theirs.cert_pem or "")
        state = Path(service.settings["state_dir"])
        folder = state / "transfers" / view.id
        assert sorted(p.name for p in folder.glob("*.crt")) == ["buffer.crt", "ca.crt", "producer.crt"]
        for key in folder.glob("*.key"):
            assert stat.S_IMODE(key.stat().st_mode) == 0o600
            assert b"PRIVATE KEY" in key.read_bytes() and key.name in ("buffer.key", "producer.key")
        ca_key = state / "data-ca" / f"{view.id}.key"
        assert stat.S_IMODE(ca_key.stat().st_mode) == 0o600
        assert stat.S_IMODE((state / "data-ca").stat().st_mode) == 0o700
        alice.cancel(view.id)
        wait_for(lambda: not ca_key.exists(), 30, what="the CA key deleted once the transfer ended")
        with pytest.raises(TransferAPIError) as over:
            alice.credentials(view.id)
        assert over.value.status == 409 and "its stream is over" in str(over.value)


def _subject(pem: str) -> str:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()


# -- the buffer itself: length prefixes, with and without TLS -----------------------------------------

@pytest.fixture
def stream_pki(tmp_path: Path) -> dict[str, TLSFiles]:
    ca = StreamCA.create("test stream")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    files = {}
    for name, role in (("buffer", "buffer"), ("producer", "producer"), ("consumer", "consumer")):
        issued = ca.issue(name, role, hosts=["127.0.0.1"] if role == "buffer" else [])
        (tmp_path / f"{name}.crt").write_bytes(issued.cert_pem)
        (tmp_path / f"{name}.key").write_bytes(issued.key_pem)
        files[name] = TLSFiles(cert=str(tmp_path / f"{name}.crt"), key=str(tmp_path / f"{name}.key"),
                               ca=str(tmp_path / "ca.crt"))
    return files


def _buffer(tmp_path: Path, scheme: str, pki: dict[str, TLSFiles], producers: int,
            *extra: str) -> tuple[NngStream, str, str]:
    """A buffer waiting for ``producers`` producers (those the test closes count as finished ones)."""
    recv, send = f"{scheme}://127.0.0.1:{free_port()}", f"{scheme}://127.0.0.1:{free_port()}"
    tls = ["--cert", pki["buffer"].cert, "--key", pki["buffer"].key, "--ca", pki["buffer"].ca, "--require-roles"] \
        if scheme == "tls+tcp" else []
    buf = NngStream(tmp_path, "--recv", recv, "--send", send, "--producers", str(producers), *tls, *extra,
                    name=scheme)
    return buf, recv, send


def _announce(url: str, length: int, context: ssl.SSLContext | None) -> bool:
    """A producer that greets and announces a ``length``-byte message; True if the buffer hung up on it."""
    raw = socket.create_connection(_host_port(url), timeout=10)
    sock = context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw
    with sock:
        sock.sendall(greeting(PUSH0))
        assert sock.recv(8) == greeting(PULL0)
        sock.sendall(struct.pack(">Q", length) + b"x" * 1024)
        return _closed(sock)


@pytest.mark.parametrize("scheme", ["tcp", "tls+tcp"])
def test_huge_length_prefixes_close_that_connection_without_allocating(tmp_path: Path, stream_pki, scheme) -> None:
    buf, recv, send = _buffer(tmp_path, scheme, stream_pki, 4, "--max-message-size", "64M")
    try:
        buf.wait_state(BufferState.WAITING)
        producer_tls = client_context(stream_pki["producer"].ca, stream_pki["producer"].cert,
                                      stream_pki["producer"].key) if scheme == "tls+tcp" else None
        consumer_tls = client_context(stream_pki["consumer"].ca, stream_pki["consumer"].cert,
                                      stream_pki["consumer"].key) if scheme == "tls+tcp" else None
        before = resident_bytes(buf.proc.pid)
        for length in (1 << 62, 1 << 30, (1 << 64) - 1):
            assert _announce(recv, length, producer_tls), f"a {length}-byte prefix must close the connection"
        grown = resident_bytes(buf.proc.pid) - before
        assert grown < 16 << 20, f"RSS grew by {grown >> 20} MiB for prefixes nobody sent data for"
        # the buffer keeps serving: a real producer and consumer go through, and only its one stream ended
        with Producer(recv, context=producer_tls, send_timeout=30) as producer:
            for seq in range(20):
                producer.send(make_message(0, seq, 4096))
        got = [check_message(m) for m in messages(send, context=consumer_tls, timeout=30)]
        assert got == [(0, s) for s in range(20)]
        assert buf.wait(30) == 0
        final = buf.final()
        assert final.producers_total == 4 and final.messages_received == 20
        log = buf.stderr_path.read_text()
        assert log.count("over --max-message-size 67108864") == 3
        assert f"it announced a {1 << 62}-byte message" in log and "Traceback" not in log
    finally:
        buf.stop()


def test_without_a_size_limit_a_message_that_cannot_be_held_closes_only_its_producer(tmp_path: Path,
                                                                                      stream_pki) -> None:
    buf, recv, send = _buffer(tmp_path, "tcp", stream_pki, 2, "--max-message-size", "0")
    try:
        buf.wait_state(BufferState.WAITING)
        assert _announce(recv, 1 << 62, None)
        with Producer(recv, send_timeout=30) as producer:
            producer.send(make_message(0, 0, 1024))
        assert [check_message(m) for m in messages(send, timeout=30)] == [(0, 0)]
        assert buf.wait(30) == 0
        log = buf.stderr_path.read_text()
        assert f"a {1 << 62}-byte message does not fit in memory" in log
        assert "Traceback" not in log and "MemoryError" not in log
    finally:
        buf.stop()


def test_the_end_marker_reaches_a_plain_pynng_recv_and_old_empty_ends_are_still_taken(tmp_path: Path,
                                                                                        stream_pki) -> None:
    buf, recv, send = _buffer(tmp_path, "tcp", stream_pki, 1)
    try:
        with pynng.Pull0(recv_timeout=30_000) as consumer, pynng.Push0(send_timeout=30_000) as old_producer:
            consumer.dial(send, block=False)
            buf.wait_status(lambda s: s.consumers_connected == 1, what="the consumer connected")
            old_producer.dial(recv, block=True)
            old_producer.send(b"data")
            old_producer.send(b"")  # how producers ended their stream before the end marker
            assert consumer.recv() == b"data"
            assert consumer.recv() == END_MARKER  # pynng's plain recv(): no zero-length message to crash on
        assert buf.wait(30) == 0
    finally:
        buf.stop()


def test_a_consumer_certificate_cannot_be_made_into_anything_else(tmp_path: Path) -> None:
    ca = StreamCA.create("roles")
    with pytest.raises(ValueError, match="role 'admin' is not one of"):
        ca.issue("mallory", "admin")
