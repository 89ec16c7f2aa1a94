"""A real pynng receiver for live-run streams, run as its own program (nng is not fork-safe).

    python -m tests.streamer.live_receiver tcp://127.0.0.1:PORT NRANKS DEADLINE_S

Listens with a Pull0 socket; every data message is checked against a ``StreamLedger`` and its
``pulse_id`` and ``timestamp`` fields are read (HDF5 payloads: only those two datasets, so large
detector frames cost no decoding). Prints one JSON line per stage on stdout: ``{"event": "listening"}``,
``{"event": "first", "time": T}`` when the first data message arrives, and at the end (every rank's
transport end answered, or the deadline) ``{"event": "done", "complete": ..., "gaps": [...], "pulse_ids": [...],
"latencies": [...], "taken": [...]}`` where a latency is arrival time minus the event's DAQ
timestamp (``taken``, in the same order), and ``ready_time`` when every rank had connected. After a rank's
end marker, the transport's own end message (anything that is not an envelope) is answered by hanging up
on that connection, which is how a producer learns its stream was taken in full; the receiver hangs up
on nobody earlier (a producer that had not yet begun waiting for the hang-up would miss it).
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Any

import h5py
import numpy as np
import pynng

from streamer.envelope import EnvelopeError, MessageKind, PayloadFormat, StreamLedger, unpack
from streamer.serializers import decode_payload
from streamer.serializers.hdf5 import NAME_ATTR

WANTED = ("pulse_id", "timestamp")


def wanted_fields(payload: memoryview, fmt: PayloadFormat) -> dict[str, np.ndarray]:
    if fmt is not PayloadFormat.HDF5:
        return {name: np.atleast_1d(value) for item in decode_payload(payload, fmt)
                for name, value in item.items() if name in WANTED}
    found: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(bytes(payload)), "r") as f:
        def visit(_path: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                name = obj.attrs.get(NAME_ATTR, "")
                name = name.decode() if isinstance(name, bytes) else str(name)
                if name in WANTED:
                    found[name] = np.atleast_1d(obj[()])
        f.visititems(visit)
    return found


def main(url: str, nranks: int, deadline_s: float) -> dict[str, Any]:
    sock = pynng.Pull0(recv_timeout=200, recv_max_size=0)
    connected: list[float] = []
    sock.add_post_pipe_connect_cb(lambda _pipe: connected.append(time.time()))
    sock.listen(url)
    print(json.dumps({"event": "listening"}), flush=True)
    ledger = StreamLedger()
    pulse_ids: list[int] = []
    latencies: list[float] = []
    taken: list[float] = []
    first: float | None = None
    hung_up = 0
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and hung_up < nranks:  # until every rank's transport end was answered
        try:
            msg = sock.recv_msg()
        except pynng.Timeout:
            continue
        arrived = time.time()
        try:
            env, payload = unpack(msg.bytes)
        except EnvelopeError:  # the transport's end after a rank's end marker: confirm by hanging up
            msg.pipe.close()
            hung_up += 1
            continue
        ledger.record(env)
        if env.kind is not MessageKind.DATA:
            continue
        if first is None:
            first = arrived
            print(json.dumps({"event": "first", "time": first}), flush=True)
        fields = wanted_fields(payload, env.fmt)
        ids = fields.get("pulse_id", np.array([], dtype=np.int64))
        pulse_ids.extend(int(p) for p in ids)
        if "timestamp" in fields:
            taken.extend(float(t) for t in fields["timestamp"])
            latencies.extend(float(arrived - t) for t in fields["timestamp"])
    sock.close()
    return {"event": "done", "complete": ledger.complete(), "gaps": ledger.describe_gaps(),
            "messages": ledger.messages, "pulse_ids": sorted(pulse_ids), "latencies": latencies,
            "taken": taken, "first_time": first,
            "ready_time": connected[nranks - 1] if len(connected) >= nranks else None}


if __name__ == "__main__":
    report = main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
    print(json.dumps(report), flush=True)
