"""Transfer benchmark: LCLStream-API start-up latency, throughput against a direct push, and the cost
of the protected data path.

    python bench/transfer_bench.py [--repeats 5] [--events 1600] [--rounds 2]

1. Latency: time from ``POST /v1/transfers`` to the first batch at a client (p50, min, max over
   ``--repeats`` small protected transfers, credentials fetched in between, then as many over plain
   tcp); most of it is process start-up (psik supervisor, nng-stream, mpiexec, lclstreamer ranks).
   Target p50 <= 1.5 s.
2. Throughput: one streamer config (epix10k2M frames, uncompressed HDF5, 2 MPI ranks) along four
   paths, alternating, timed from launch to the last byte, best of ``--rounds`` each:
   ``direct`` (``mpiexec -n 2 lclstreamer`` pushing straight into one listening Pull0), ``buffer``
   (the same through an nng-stream started by hand), ``api-tcp`` (through LCLStream-API with
   ``options.tls=false``, which the bench's service allows) and ``api-tls`` (the default: TLS with the
   transfer's own certificates on both hops, consumer certificate from ``/credentials``).
   Targets: api-tcp / direct >= 0.8x; api-tls / api-tcp >= 0.5x. The consumer opens two connections
   to the buffer (``connections=2``), as the direct consumer has one from each rank, so a large
   message does not hold up the next.

Prints ratios measured side by side in one run. Not a test: no assertion on time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pynng
import yaml

from buffer.client import messages
from buffer.end_marker import is_end
from lclstream_api.local import BIN, LocalDeployment, free_port
from lclstream_api.transport import open_transfer
from streamer.envelope import MessageKind, StreamLedger, unpack

CONSUMER_CONNECTIONS = 2


def synthetic(events: int, detector: bool, compression: str = "none") -> dict[str, Any]:
    sources: dict[str, Any] = {"pulse_id": {"type": "SyntheticScalar", "kind": "pulse_id"}}
    fields = {"pulse_id": "/LCLS/pulse_id"}
    if detector:
        sources["epix"] = {"type": "SyntheticAreaDetector", "detector": "epix10k2M"}
        fields["epix"] = "/entry/data/data"
    return {"source_identifier": "exp=bench:run=1",
            "event_source": {"type": "SyntheticEventSource", "number_of_events": events, "seed": 1},
            "data_sources": sources,
            "processing_pipeline": [{"type": "BatchProcessingPipeline", "batch_size": 8}],
            "data_serializer": {"type": "HDF5Serializer", "fields": fields, "compression": compression},
            "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": "unused"}]}


def latency(deployment: LocalDeployment, repeats: int, tls: bool) -> list[float]:
    out = []
    with deployment.client() as api:
        for i in range(repeats):
            t0 = time.perf_counter()
            view = api.request(synthetic(16, detector=False) | {"source_identifier": f"exp=bench:run={i}"},
                               {"ranks": 2, "tls": tls})
            _creds, context = open_transfer(view.id, api)
            first = None
            for _ in messages(view.url, context=context, timeout=60):
                first = first or time.perf_counter()
            out.append((first or time.perf_counter()) - t0)
            api.wait(view.id, interval=0.2)
    return out


def through_api(deployment: LocalDeployment, config: dict[str, Any], tls: bool) -> tuple[float, float, int]:
    """(launch -> last byte seconds, first -> last byte seconds, bytes) through LCLStream-API."""
    with deployment.client() as api:
        t0 = time.perf_counter()
        view = api.request(config, {"ranks": 2, "max_bytes": 512 * 2**20, "tls": tls})
        _creds, context = open_transfer(view.id, api)
        first, nbytes = None, 0
        for message in messages(view.url, context=context, timeout=120, connections=CONSUMER_CONNECTIONS):
            first = first or time.perf_counter()
            nbytes += len(message)
        t1 = time.perf_counter()
        api.wait(view.id, interval=0.2)
    return t1 - t0, t1 - (first or t1), nbytes


def direct(config: dict[str, Any], workdir: Path) -> tuple[float, float, int]:
    """The same config pushed by 2 ranks straight into one listening consumer (no API, no buffer)."""
    url = f"tcp://127.0.0.1:{free_port()}"
    cfg = dict(config, data_handlers=[{"type": "NNGPushDataHandler", "url": url, "role": "client"}])
    path = workdir / f"direct-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ledger, nbytes, first = StreamLedger(), 0, None
    with pynng.Pull0(listen=url, recv_timeout=120_000, recv_max_size=0) as sock:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(BIN / "mpiexec"), "-n", "2", str(BIN / "lclstreamer"), "-c", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while len(ledger.expected) < 2:
                msg = sock.recv_msg()
                body = msg.bytes
                if is_end(body):  # a rank's transport end marker: hang up like a buffer does
                    msg.pipe.close()
                    continue
                first = first or time.perf_counter()
                nbytes += len(body)
                env, _ = unpack(body)
                ledger.record(env)
                if env.kind is MessageKind.END and len(ledger.expected) == 2:
                    break
            t1 = time.perf_counter()
        except BaseException:
            proc.kill()
            raise
    # closing the socket hangs up on both ranks, which confirms the end of their streams
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    if not ledger.complete():
        raise RuntimeError(f"direct stream incomplete: {ledger.describe_gaps()}")
    return t1 - t0, t1 - (first or t1), nbytes


def buffer_only(config: dict[str, Any], workdir: Path) -> tuple[float, float, int]:
    """The same config through an nng-stream buffer started by hand (no API, no Psi-k): the hop's cost."""
    recv, send = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    cfg = dict(config, data_handlers=[{"type": "NNGPushDataHandler", "url": recv, "role": "client"}])
    path = workdir / f"buffered-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    buffer = subprocess.Popen([str(BIN / "nng-stream"), "--recv", recv, "--send", send, "--producers", "2",
                               "--max-bytes", str(512 * 2**20)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    producers = subprocess.Popen([str(BIN / "mpiexec"), "-n", "2", str(BIN / "lclstreamer"), "-c", str(path)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first, nbytes = None, 0
    try:
        for message in messages(send, timeout=120, connections=CONSUMER_CONNECTIONS):
            first = first or time.perf_counter()
            nbytes += len(message)
        t1 = time.perf_counter()
        producers.wait(timeout=60)
        buffer.wait(timeout=60)
    finally:
        for proc in (producers, buffer):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    return t1 - t0, t1 - (first or t1), nbytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="transfers for the latency figure")
    parser.add_argument("--events", type=int, default=1600,
                        help="epix10k2M events for the throughput figure (1600: 6.6 GiB, long enough that process start-up does not dominate)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating direct/API rounds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="transfer-bench-") as tmp, \
            LocalDeployment(Path(tmp) / "deploy", "bench", settings={"allow_plain_tcp": True}) as deployment:
        for tls in (True, False):
            lat = latency(deployment, args.repeats, tls)
            print(f"POST -> first batch over {len(lat)} {'protected' if tls else 'plain tcp'} transfers: "
                  f"p50 {statistics.median(lat):.2f} s, min {min(lat):.2f} s, max {max(lat):.2f} s"
                  + (" (target p50 <= 1.5 s)" if tls else ""))
        config = synthetic(args.events, detector=True)
        runs: dict[str, list[tuple[float, float, int]]] = {"direct": [], "buffer": [], "api-tcp": [], "api-tls": []}
        for _ in range(args.rounds):
            runs["direct"].append(direct(config, Path(tmp)))
            runs["buffer"].append(buffer_only(config, Path(tmp)))
            runs["api-tcp"].append(through_api(deployment, config, tls=False))
            runs["api-tls"].append(through_api(deployment, config, tls=True))
        best = {k: min(v, key=lambda r: r[0]) for k, v in runs.items()}
        for name, (total, steady, nbytes) in best.items():
            print(f"{name:>7}: {nbytes / 2**20:.0f} MiB, launch->last byte {total:.2f} s "
                  f"({nbytes / total / 2**30:.3f} GiB/s), first->last byte {steady:.2f} s "
                  f"({nbytes / max(steady, 1e-9) / 2**30:.3f} GiB/s)")
        for path, base, target in (("api-tcp", "direct", " (target >= 0.8x)"), ("buffer", "direct", ""),
                                   ("api-tcp", "buffer", ""), ("api-tls", "api-tcp", " (target >= 0.5x)")):
            print(f"throughput {path} / {base}: {best[base][0] / best[path][0]:.2f}x launch->last byte, "
                  f"{best[base][1] / max(best[path][1], 1e-9):.2f}x first->last byte{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
