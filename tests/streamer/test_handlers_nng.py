"""NNGPushDataHandler delivers every message to a real pynng Pull0 receiver running as its own process."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pydantic
import pytest

from certified.config import Layout
from streamer.base import MessageInfo, RunContext
from streamer.envelope import PayloadFormat
from streamer.handlers.nng_push import NNGPushDataHandler, NNGPushDataHandlerConfig
from tests.fixtures.net import free_port
from tests.fixtures.pki import make_pki

# A receiver process: listens (or dials), records envelopes in a StreamLedger until every rank's end
# marker came (or a deadline passed), decodes every payload, and prints a JSON report.
RECEIVER = textwrap.dedent("""
    import json, sys, time
    import numpy
    import pynng
    from buffer.end_marker import is_end
    from streamer.envelope import StreamLedger, MessageKind, unpack
    from streamer.serializers import decode_payload

    url, nranks, deadline_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    hang_up = "--keep-connected" not in sys.argv
    linger = 3.0 if not hang_up else 0.0  # a receiver that keeps the connection after the end
    sys.argv = [a for a in sys.argv if a != "--keep-connected"]
    tls = None
    if len(sys.argv) > 4:
        cert, key, ca = (open(p).read() for p in sys.argv[4:7])
        tls = pynng.TLSConfig(pynng.TLSConfig.MODE_SERVER, own_cert_string=cert, own_key_string=key,
                              ca_string=ca, auth_mode=pynng.TLSConfig.AUTH_MODE_REQUIRED)
    sock = pynng.Pull0(recv_timeout=500, recv_max_size=0, tls_config=tls)
    sock.listen(url)
    print("listening", flush=True)
    ledger, pulse_ids, deadline = StreamLedger(), [], time.monotonic() + deadline_s
    while time.monotonic() < deadline and len(ledger.expected) < nranks:
        try:
            msg = sock.recv_msg()
        except pynng.Timeout:
            continue
        message = msg.bytes
        if is_end(message):  # a rank's transport end: hang up, as the buffer does, which confirms it
            if hang_up:
                msg.pipe.close()
            continue
        env, payload = unpack(message)
        ledger.record(env)
        if env.kind is MessageKind.DATA:
            for fields in decode_payload(payload, env.fmt):
                ids = fields.get("pulse_id", fields.get("frame"))  # SIMPLON images carry frame numbers
                if ids is not None:
                    pulse_ids.extend(int(p) for p in numpy.atleast_1d(ids))
    time.sleep(linger)
    sock.close()
    print(json.dumps({"complete": ledger.complete(), "gaps": ledger.describe_gaps(), "messages": ledger.messages,
                      "pulse_ids": sorted(pulse_ids)}), flush=True)
""")

PRODUCER = textwrap.dedent("""
    import json, sys
    from streamer.handlers.nng_push import NNGPushDataHandler, NNGPushDataHandlerConfig
    from tests.streamer.test_handlers_nng import send_batches
    config = NNGPushDataHandlerConfig.model_validate(json.loads(sys.argv[1]))
    print(json.dumps(send_batches(config, int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))), flush=True)
""")

ROOT = Path(__file__).resolve().parents[2]


def send_batches(config: NNGPushDataHandlerConfig, rank: int, nranks: int, batches: int) -> dict:
    """Run one rank's handler: HDF5 batches of 4 events whose pulse ids are rank-interleaved."""
    from streamer.serializers.hdf5 import HDF5Serializer, HDF5SerializerConfig

    context = RunContext("test:run=1", rank=rank, nranks=nranks)
    serializer = HDF5Serializer(HDF5SerializerConfig(type="HDF5Serializer", fields={
        "pulse_id": "/pulse_id", "image": "/data"}, compression="bitshuffle_lz4"), context)
    handler = NNGPushDataHandler(config, context)
    handler.open()
    for seq in range(batches):
        ids = np.array([(seq * 4 + i) * nranks + rank for i in range(4)])
        batch = {"pulse_id": ids, "image": np.random.default_rng(seq).poisson(0.1, (4, 256, 256)).astype(np.uint16)}
        (message,) = serializer.serialize(batch, seq)
        handler.handle(message, MessageInfo(rank, nranks, seq, 4, PayloadFormat.HDF5))
        handler.flush()
    handler.close()
    return handler.summary()


def start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 90) -> dict:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def spawn():
    """Start helper processes (``spawn(code, *args)``); every one is killed when the test ends."""
    started: list[subprocess.Popen] = []

    def run(code: str, *args: str) -> subprocess.Popen:
        started.append(start(code, *args))
        return started[-1]

    yield run
    for process in started:
        process.kill()
        process.wait(timeout=10)


def wait_listening(process: subprocess.Popen) -> None:
    line = process.stdout.readline()
    assert line.strip() == "listening", process.stderr.read() if process.poll() is not None else line


def test_two_ranks_deliver_every_message_with_end_markers(spawn) -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    receiver = spawn(RECEIVER, url, "2", "60")
    wait_listening(receiver)
    config = json.dumps({"type": "NNGPushDataHandler", "url": url, "role": "client"})
    producers = [spawn(PRODUCER, config, str(rank), "2", "6") for rank in (0, 1)]
    summaries = [finish(p) for p in producers]
    report = finish(receiver)
    assert [s["messages"] for s in summaries] == [6, 6]
    assert [s["end_confirmed"] for s in summaries] == [True, True]
    assert report["complete"], report["gaps"]
    assert report["messages"] == 12
    assert report["pulse_ids"] == list(range(48))


def test_client_retries_until_receiver_starts(spawn) -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    config = json.dumps({"type": "NNGPushDataHandler", "url": url, "role": "client", "connect_timeout_s": 60})
    producer = spawn(PRODUCER, config, "0", "1", "3")
    time.sleep(1.5)  # the producer is dialing a port nobody listens on yet
    assert producer.poll() is None
    receiver = spawn(RECEIVER, url, "1", "60")
    assert finish(producer)["messages"] == 3
    report = finish(receiver)
    assert report["complete"] and report["pulse_ids"] == list(range(12))


def test_unconfirmed_end_is_reported_after_close_timeout(spawn) -> None:
    """A receiver that keeps the connection open after the end: the rank gives up waiting and says so."""
    url = f"tcp://127.0.0.1:{free_port()}"
    receiver = spawn(RECEIVER, url, "1", "60", "--keep-connected")
    wait_listening(receiver)
    config = json.dumps({"type": "NNGPushDataHandler", "url": url, "role": "client", "close_timeout_s": 1})
    summary = finish(spawn(PRODUCER, config, "0", "1", "2"))
    assert summary["messages"] == 2 and summary["end_confirmed"] is False
    assert finish(receiver)["complete"]


def test_connect_timeout_is_a_clear_error() -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    handler = NNGPushDataHandler(NNGPushDataHandlerConfig(type="NNGPushDataHandler", url=url,
                                                          connect_timeout_s=0.5), RunContext("x"))
    with pytest.raises(ConnectionError, match=f"could not connect to {url} within 0.5 s"):
        handler.open()


def test_mutual_tls_delivery_with_certified_identities(tmp_path: Path, spawn) -> None:
    """The receiver is a certified service identity; the producer connects with its introduction from it."""
    pki = make_pki(tmp_path, server="buffer", users=("streamer",), key_type="p256")
    server, client = Layout(pki.server_dir), Layout(pki.user_dir("streamer"))
    url = f"tls+tcp://127.0.0.1:{free_port()}"
    receiver = spawn(RECEIVER, url, "1", "60", str(server.id_cert), str(server.id_key), str(server.ca_cert))
    wait_listening(receiver)
    config = json.dumps({"type": "NNGPushDataHandler", "url": url, "tls_cert": str(client.intros / "buffer.crt"),
                         "tls_key": str(client.id_key), "tls_ca": str(server.ca_cert)})
    producer = spawn(PRODUCER, config, "0", "1", "2")
    assert finish(producer)["messages"] == 2
    report = finish(receiver)
    assert report["complete"] and report["pulse_ids"] == list(range(8))


@pytest.mark.parametrize("fields,fragment", [
    ({"url": "http://x:1"}, "must start with one of"),
    ({"url": "tcp://127.0.0.1:1", "tls_ca": "/ca.pem"}, r"only apply to tls\+tcp"),
    ({"url": "tls+tcp://127.0.0.1:1"}, "needs tls_ca"),
    ({"url": "tls+tcp://127.0.0.1:1", "tls_ca": "/a", "tls_cert": "/c"}, "given together"),
    ({"url": "tcp://127.0.0.1:1", "role": "broker"}, "role"),
])
def test_bad_config(fields: dict, fragment: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=fragment):
        NNGPushDataHandlerConfig(type="NNGPushDataHandler", **fields)


def test_server_role_refuses_several_ranks_and_missing_tls_file_is_named(tmp_path: Path) -> None:
    handler = NNGPushDataHandler(NNGPushDataHandlerConfig(type="NNGPushDataHandler", role="server",
                                                          url=f"tcp://127.0.0.1:{free_port()}"),
                                 RunContext("x", rank=0, nranks=2))
    with pytest.raises(ValueError, match="2 ranks cannot share"):
        handler.open()
    missing = tmp_path / "nope.pem"
    handler = NNGPushDataHandler(NNGPushDataHandlerConfig(type="NNGPushDataHandler", url="tls+tcp://127.0.0.1:1",
                                                          tls_ca=missing), RunContext("x"))
    with pytest.raises(FileNotFoundError, match="tls_ca: cannot read .*nope.pem"):
        handler.open()
