"""Live-run benchmark: how soon an event the DAQ writes leaves the streamer, and how fast a run may be written
for the live source to keep up.

    python bench/live_bench.py [--duration 10] [--ranks 1 2] [--latency-rates 120 10] [--search-shape 1,64,64]

1. Latency at 120 Hz with a jungfrau4M detector (8 x 512 x 1024 uint16, bitshuffle+LZ4 in the run files):
   first the single-threaded cost of each stage per event (what bounds the rates here), and the DAQ's rate
   alone; then ``lclstream-elog run`` writes the run while ``mpiexec -n N lclstreamer`` with
   ``LiveRunEventSource`` (batches of 1, HDF5 messages with bitshuffle+LZ4) pushes every event over nng to
   a receiver, which subtracts the event's DAQ timestamp (taken just before the DAQ writes it) from its
   arrival time. The DAQ waits ``--start-delay`` seconds after run_start (as a real DAQ configures) so the
   streamer is up before the first event; p50 and p95 over the events taken once every rank streamed,
   with the rate the DAQ actually achieved (on a small shared machine it falls short of 120 Hz). A second,
   low rate (10 Hz) shows the latency of the chain itself, without events queueing for a busy core.
2. Highest sustained rate: the same chain with small frames (``--search-shape``, batches of 8) at doubling
   DAQ rates from 120 Hz; a rate is kept up with when the DAQ achieved it (>= 95 %) and the p95 latency
   stayed under ``--keep-up-p95`` seconds. Printed for each rank count.

Prints figures measured in this run. Not a test: no assertion on time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from elog.client import LocalElog
from streamer.run_dir import run_dir_for

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXPERIMENT = "benchlive"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env() -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDI_"))}
    environ["PATH"] = f"{BIN}:{environ.get('PATH', '')}"
    return environ


def streamer_config(run_dir: Path, url: str, detector: str, batch: int) -> dict[str, Any]:
    return {
        "source_identifier": f"exp={EXPERIMENT}:run=bench",
        "event_source": {"type": "LiveRunEventSource", "run_dir": str(run_dir), "idle_timeout": 60},
        "data_sources": {"frame": {"type": "HDF5Dataset", "dataset": f"/data/{detector}"},
                         "pulse_id": {"type": "HDF5Dataset", "dataset": "/LCLS/pulse_id"},
                         "timestamp": {"type": "HDF5Dataset", "dataset": "/LCLS/timestamp"}},
        "processing_pipeline": [{"type": "BatchProcessingPipeline", "batch_size": batch}],
        "data_serializer": {"type": "HDF5Serializer", "compression": "bitshuffle_lz4",
                            "fields": {"frame": "/entry/data/data", "pulse_id": "/LCLS/pulse_id",
                                       "timestamp": "/LCLS/timestamp"}},
        "data_handlers": [{"type": "NNGPushDataHandler", "url": url, "role": "client", "connect_timeout_s": 120}],
    }


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def one_run(root: Path, run: int, ranks: int, rate: float, duration: float, detector: str,
            shape: str | None, batch: int, start_delay: float) -> dict[str, Any]:
    """Run the DAQ and a live streamer side by side; the receiver's figures plus the DAQ's."""
    data_root = root / "runs"
    run_dir = run_dir_for(data_root, EXPERIMENT, run)
    url = f"tcp://127.0.0.1:{free_port()}"
    config = root / f"live-{run}.yaml"
    config.write_text(yaml.safe_dump(streamer_config(run_dir, url, detector, batch)))
    daq_cmd = [str(BIN / "lclstream-elog"), "run", "--instrument", "MFX", "--experiment", EXPERIMENT,
               "--run", str(run), "--detector", detector, "--rate", str(rate), "--duration", str(duration),
               "--events-per-file", "1000", "--data-root", str(data_root), "--no-kafka", "--json",
               "--start-delay", str(start_delay)]
    if shape:
        daq_cmd += ["--shape", shape]
    started: list[subprocess.Popen[Any]] = []
    try:
        receiver = subprocess.Popen([sys.executable, "-m", "tests.streamer.live_receiver", url, str(ranks),
                                     str(duration + 600)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                                    env=env(), start_new_session=True)
        started.append(receiver)
        assert receiver.stdout is not None
        receiver.stdout.readline()  # listening
        daq = subprocess.Popen(daq_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env(),
                               start_new_session=True)
        started.append(daq)
        deadline = time.monotonic() + 60
        while not (run_dir / "run.json").exists() and time.monotonic() < deadline and daq.poll() is None:
            time.sleep(0.01)
        streamer = subprocess.Popen([str(BIN / "mpiexec"), "-n", str(ranks), str(BIN / "lclstreamer"), "-c",
                                     str(config), "--log-level", "WARNING"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, env=env(), start_new_session=True)
        started.append(streamer)
        daq_out, _ = daq.communicate(timeout=duration * 20 + 300)
        daq_done = time.time()
        _, streamer_err = streamer.communicate(timeout=duration * 20 + 600)
        tail_s = time.time() - daq_done
        report = json.loads(receiver.communicate(timeout=120)[0].strip().splitlines()[-1])
    finally:
        for proc in started:
            stop(proc)
    if streamer.returncode != 0:
        raise RuntimeError(f"lclstreamer failed: {streamer_err[-2000:]}")
    daq_result = json.loads(daq_out)
    with LocalElog(data_root / "elog.sqlite") as records:
        count = records.get(EXPERIMENT, run).event_count or 0
    first = report["first_time"] or 0.0
    # latencies of the events taken once every rank was streaming: a start-up backlog is not the steady state
    ready = report["ready_time"] or first
    steady = [lat for lat, taken in zip(report["latencies"], report["taken"], strict=True) if taken >= ready]
    return {"ranks": ranks, "requested_hz": rate, "achieved_hz": daq_result["rate_hz"], "events": count,
            "received": len(report["pulse_ids"]), "complete": report["complete"]
            and sorted(report["pulse_ids"]) == list(range(count)), "latencies": steady,
            "all_latencies": report["latencies"], "tail_s": tail_s, "daq_lag_s": daq_result["max_lag_s"],
            "backlog": len(report["latencies"]) - len(steady)}


def daq_alone(root: Path, run: int, duration: float) -> str:
    """The DAQ without a streamer beside it: how fast this machine writes jungfrau4M events at all."""
    done = subprocess.run([str(BIN / "lclstream-elog"), "run", "--instrument", "MFX", "--experiment", EXPERIMENT,
                           "--run", str(run), "--detector", "jungfrau4M", "--rate", "120", "--duration",
                           str(duration), "--data-root", str(root / "runs"), "--no-kafka", "--json"],
                          capture_output=True, text=True, env=env(), timeout=duration * 30 + 120, check=True)
    result = json.loads(done.stdout)
    return (f"DAQ alone: {result['rate_hz']:.1f} of 120 Hz ({result['raw_bytes'] / result['elapsed_s'] / 1e9:.2f} "
            f"GB/s raw, {result['file_bytes'] / result['elapsed_s'] / 1e6:.0f} MB/s to disk)")


def per_event_costs(root: Path, events: int = 24) -> str:
    """Single-threaded milliseconds per jungfrau4M event of each stage, measured in this process: what
    bounds the rates on this machine (each stage runs in its own process, on its own core if there is one)."""
    import time as clock

    import numpy as np

    from elog.daq import Daq, DaqSettings
    from elog.records import RunRecord, RunState
    from streamer.base import RunContext
    from streamer.config import load_config
    from streamer.runner import Chain

    run_dir = root / "costs"
    record = RunRecord(instrument="MFX", experiment=EXPERIMENT, run=999, state=RunState.OPEN,
                       start_time="2026-01-01T00:00:00Z", run_dir=str(run_dir), opened_by="bench")
    daq = Daq(record, DaqSettings(detectors=["jungfrau4M"], events=events))
    daq.detectors["jungfrau4M"].prepare()
    t0 = clock.perf_counter()
    taken = [daq.event(i) for i in range(events)]
    t1 = clock.perf_counter()
    for event in taken:
        daq.writer.write([event])
    t2 = clock.perf_counter()
    daq.writer.close()
    config = load_config(streamer_config(run_dir, "tcp://127.0.0.1:1", "jungfrau4M", 1))
    chain = Chain(config, RunContext("bench"))
    chain.source.number_of_events()
    t3 = clock.perf_counter()
    read = list(chain.source.events(range(events)))
    t4 = clock.perf_counter()
    for i, event in enumerate(read):
        chain.serializer.serialize({name: np.asarray(value)[np.newaxis] for name, value in event.items()}, i)
    t5 = clock.perf_counter()
    chain.source.close()
    per = [(t1 - t0), (t2 - t1), (t4 - t3), (t5 - t4)]
    ms = [x / events * 1e3 for x in per]
    return (f"per jungfrau4M event, one core: DAQ generate {ms[0]:.1f} ms + compress/write {ms[1]:.1f} ms; "
            f"live source read/decompress {ms[2]:.1f} ms; HDF5 serialize {ms[3]:.1f} ms "
            f"(120 Hz needs {sum(ms) * 0.12:.1f} cores for these stages)")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def show(label: str, result: dict[str, Any]) -> str:
    lat = result["latencies"]
    return (f"{label}: {result['ranks']} rank(s), DAQ {result['achieved_hz']:.1f} of {result['requested_hz']:g} Hz, "
            f"{result['events']} events, {'all received once' if result['complete'] else 'INCOMPLETE'}; "
            f"latency p50 {percentile(lat, 0.5) * 1e3:.0f} ms, p95 {percentile(lat, 0.95) * 1e3:.0f} ms "
            f"(over {len(lat)} events; {result['backlog']} taken before every rank streamed left out); "
            f"streamer ended {result['tail_s']:.2f} s after the DAQ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the 120 Hz jungfrau4M run")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--latency-rates", type=float, nargs="+", default=[120.0, 10.0],
                        help="DAQ rates of the jungfrau4M latency runs (a low one shows the latency without queueing)")
    parser.add_argument("--search-shape", default="1,64,64", help="frames of the rate search (P,H,W)")
    parser.add_argument("--search-duration", type=float, default=4.0, help="seconds per rate of the search")
    parser.add_argument("--max-rate", type=float, default=7680.0)
    parser.add_argument("--keep-up-p95", type=float, default=0.5, help="seconds of p95 latency still keeping up")
    parser.add_argument("--start-delay", type=float, default=10.0,
                        help="seconds the DAQ waits after run_start, so the streamer starts before the first event")
    args = parser.parse_args()
    run = 0
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        root = Path(tmp)
        print("1. latency DAQ write -> streamer handler, jungfrau4M at 120 Hz", flush=True)
        print("   " + per_event_costs(root), flush=True)
        run += 1
        print("   " + daq_alone(root, run, min(args.duration, 5.0)), flush=True)
        for rate in args.latency_rates:
            for ranks in args.ranks:
                run += 1
                result = one_run(root, run, ranks, rate, args.duration, "jungfrau4M", None, 1, args.start_delay)
                print("   " + show(f"jungfrau4M at {rate:g} Hz", result), flush=True)
        print(f"2. highest sustained DAQ rate the live source keeps up with (frames {args.search_shape}, "
              f"batches of 8, p95 <= {args.keep_up_p95:g} s)", flush=True)
        for ranks in args.ranks:
            best = None
            rate = 120.0
            while rate <= args.max_rate:
                run += 1
                result = one_run(root, run, ranks, rate, args.search_duration, "epix10k2M", args.search_shape, 8,
                                 args.start_delay)
                daq_kept = result["achieved_hz"] >= 0.95 * rate
                source_kept = result["complete"] and percentile(result["latencies"], 0.95) <= args.keep_up_p95
                kept = daq_kept and source_kept
                verdict = "kept up" if kept else ("NOT kept up" if not source_kept else
                                                  "not measured: the DAQ could not write that fast here")
                print("   " + show(f"{rate:g} Hz {verdict}", result), flush=True)
                if not kept:
                    break
                best = rate
                rate *= 2
            print(f"   => {ranks} rank(s): highest rate kept up with: {best if best else 'none'} Hz", flush=True)


if __name__ == "__main__":
    main()
