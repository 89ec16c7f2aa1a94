"""Every examples/output-<serializer>-<handler>.yaml runs (2 small events, port changed to a free one) and
a real receiver of that handler's kind gets the events back through the serializer's decoder."""

import threading
import time
from pathlib import Path

import pytest
import yaml
import zmq

from streamer.envelope import PayloadFormat
from streamer.handlers.files import EXTENSIONS
from streamer.serializers import decode_payload, simplon
from tests.streamer.conftest import REPO, run_lclstreamer
from tests.streamer.test_handlers_nng import RECEIVER, finish, free_port, spawn, wait_listening  # noqa: F401
from tests.streamer.test_handlers_zmq import RequestClient

EXAMPLES = sorted((REPO / "examples").glob("output-*.yaml"))
FORMATS = {"hdf5": PayloadFormat.HDF5, "msgpack": PayloadFormat.MSGPACK, "simplon": PayloadFormat.SIMPLON}
EVENTS = 2


def pulse_ids(decoded: list[dict]) -> list[int]:
    ids: list[int] = []
    for fields in decoded:
        value = fields.get("pulse_id", fields.get("frame"))
        if value is not None:
            ids.extend(int(v) for v in (value if hasattr(value, "__len__") else [value]))
    return sorted(ids)


def decode_frames(frames: list[bytes], fmt: PayloadFormat) -> list[dict]:
    if fmt is PayloadFormat.SIMPLON:
        return [simplon.decode(frames)]
    return decode_payload(frames[0], fmt)


def pull(url: str, expected: int, fmt: PayloadFormat, deadline_s: float = 120) -> list[dict]:
    context = zmq.Context()
    socket = context.socket(zmq.PULL)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(url)
    decoded: list[dict] = []
    deadline = time.monotonic() + deadline_s
    try:
        for _ in range(expected):
            while not socket.poll(200):
                assert time.monotonic() < deadline, f"only {len(decoded)} of {expected} messages arrived"
            decoded.extend(decode_frames(socket.recv_multipart(), fmt))
    finally:
        socket.close()
        context.term()
    return decoded


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_output_example_runs(tmp_path: Path, example: Path, spawn) -> None:  # noqa: F811
    _, serializer, handler = example.stem.split("-")
    fmt = FORMATS[serializer]
    config = yaml.safe_load(example.read_text())
    config["data_sources"]["jungfrau"]["shape"] = [8, 64, 128]  # small frames keep the test light
    (section,) = config["data_handlers"]
    if "url" in section:
        section["url"] = f"tcp://127.0.0.1:{free_port()}"
    path = tmp_path / example.name
    path.write_text(yaml.safe_dump(config))
    args = ["-c", str(path), "--num-events", str(EVENTS), "--log-level", "WARNING"]
    messages = {PayloadFormat.HDF5: 1, PayloadFormat.MSGPACK: EVENTS, PayloadFormat.SIMPLON: EVENTS + 2}[fmt]
    if handler == "files":
        result = run_lclstreamer(args, cwd=tmp_path)
        files = sorted(tmp_path.glob(f"*/*{EXTENSIONS[fmt]}"))
        assert len(files) == messages
        decoded = [d for f in files for d in decode_payload(f.read_bytes(), fmt)]
    elif handler == "nng":
        receiver = spawn(RECEIVER, section["url"], "1", "120")
        wait_listening(receiver)
        result = run_lclstreamer(args, cwd=tmp_path)
        report = finish(receiver)
        assert report["complete"] and report["messages"] == messages, report
        decoded = [{"pulse_id": report["pulse_ids"]}]
    elif handler == "zmqpush":
        outcome: dict = {}
        runner = threading.Thread(target=lambda: outcome.update(result=run_lclstreamer(args, cwd=tmp_path)))
        runner.start()
        decoded = pull(section["url"], messages, fmt)
        runner.join(timeout=200)
        result = outcome["result"]
    else:
        client = RequestClient(section["url"]).start()
        result = run_lclstreamer(args, cwd=tmp_path)
        client.join()
        assert client.ended
        decoded = [d for reply in client.replies for d in decode_payload(reply, fmt)]
    assert result.returncode == 0, result.stderr
    assert pulse_ids(decoded) == list(range(EVENTS))
