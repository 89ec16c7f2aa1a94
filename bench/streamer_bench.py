"""Streamer benchmark: serialization throughput and whole-chain scaling, measured side by side in one run.

    .venv/bin/python bench/streamer_bench.py [--batches 12] [--events 256] [--skip-mpi]

On synthetic Jungfrau-like 4 MiB uint16 frames (4 panels x 512 x 1024, sparse: Poisson background plus
Bragg-like peaks), batches of 8 events:

1. ``ndarray.tobytes()``, ``HDF5Serializer`` uncompressed and with bitshuffle+LZ4 on the same batches,
   interleaved round by round (best round kept), plus the two ways to build the in-memory HDF5 image,
   and the SIMPLON (bitshuffle+LZ4) and CrystFEL msgpack serializers for reference;
2. the whole chain (``mpiexec -n 1`` and ``-n 2`` ``lclstreamer``: synthetic source -> batches of 8 ->
   HDF5 bitshuffle+LZ4 -> files in a temporary directory), events/s from the run summaries.

Prints each figure, the ratios and the targets (uncompressed HDF5 >= 0.5x tobytes(); bitshuffle+LZ4
>= 0.6 GB/s per core; 2 ranks >= 1.7x one rank). Figures depend on the machine's load: say how loaded
it was when quoting them.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamer.base import RunContext  # noqa: E402
from streamer.registry import lookup  # noqa: E402
from streamer.serializers.hdf5 import HDF5Serializer, HDF5SerializerConfig  # noqa: E402
from streamer.serializers.msgpack_events import MsgpackSerializer, MsgpackSerializerConfig  # noqa: E402
from streamer.serializers.simplon import SimplonBinarySerializer, SimplonBinarySerializerConfig  # noqa: E402

FRAME_SHAPE = [4, 512, 1024]  # 4 MiB of uint16 per event
BATCH = 8
VENV_BIN = Path(sys.executable).parent


def synthetic_batches(count: int) -> list[dict[str, np.ndarray]]:
    """Batches of 8 Jungfrau-like frames from the streamer's own synthetic source."""
    source_cfg = {"type": "SyntheticEventSource", "number_of_events": count * BATCH, "seed": 5}
    detector_cfg = {"type": "SyntheticAreaDetector", "detector": "jungfrau4M", "shape": FRAME_SHAPE}
    source_component = lookup("event_sources", "SyntheticEventSource")
    detector_component = lookup("data_sources", "SyntheticAreaDetector")
    source = source_component.implementation(source_component.config_model.model_validate(source_cfg),
                                             {"jungfrau": detector_component.config_model.model_validate(detector_cfg)},
                                             RunContext("bench"))
    frames = [event["jungfrau"] for event in source.events(range(count * BATCH))]
    return [{"jungfrau": np.stack(frames[i:i + BATCH])} for i in range(0, len(frames), BATCH)]


def throughput(fn: Callable[[dict[str, np.ndarray]], object], batches: list[dict[str, np.ndarray]]) -> float:
    nbytes = sum(b["jungfrau"].nbytes for b in batches)
    start = time.perf_counter()
    for batch in batches:
        fn(batch)
    return nbytes / (time.perf_counter() - start) / 1e9


def core_driver_image(batch: dict[str, np.ndarray], names=itertools.count()) -> bytes:
    with h5py.File(f"bench-{next(names)}.h5", "w", driver="core", backing_store=False) as f:
        f.create_dataset("/entry/data/data", data=batch["jungfrau"], chunks=(1, *FRAME_SHAPE))
        f.flush()
        return f.id.get_file_image()


def bytesio_image(batch: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("/entry/data/data", data=batch["jungfrau"], chunks=(1, *FRAME_SHAPE))
    return buffer.getvalue()


def serializer(compression: str) -> HDF5Serializer:
    config = HDF5SerializerConfig(type="HDF5Serializer", fields={"jungfrau": "/entry/data/data"},
                                  compression=compression)
    return HDF5Serializer(config, RunContext("bench"))


def serialization(batches: list[dict[str, np.ndarray]], rounds: int) -> dict[str, float]:
    plain, packed = serializer("none"), serializer("bitshuffle_lz4")
    dectris = SimplonBinarySerializer(SimplonBinarySerializerConfig(type="SimplonBinarySerializer", image="jungfrau"),
                                      RunContext("bench"))
    crystfel = MsgpackSerializer(MsgpackSerializerConfig(type="MsgpackSerializer"), RunContext("bench"))
    cases: dict[str, Callable] = {
        "tobytes": lambda b: b["jungfrau"].tobytes(),
        "hdf5_none": lambda b: plain.serialize(b, 0),
        "hdf5_bslz4": lambda b: packed.serialize(b, 0),
        "image_bytesio": bytesio_image,
        "image_core_driver": core_driver_image,
        "simplon_bslz4": lambda b: dectris.serialize(b, 0),
        "msgpack_crystfel": lambda b: crystfel.serialize(b, 0),
    }
    best = dict.fromkeys(cases, 0.0)
    for round_number in range(rounds):
        for name, fn in cases.items():  # side by side: every case once per round
            best[name] = max(best[name], throughput(fn, batches))
        print(f"  round {round_number + 1}/{rounds}: " + ", ".join(f"{k} {v:.2f}" for k, v in best.items())
              + " GB/s (best so far)", file=sys.stderr, flush=True)
    sizes = [len(packed.serialize(b, 0)[0]) for b in batches]
    best["bslz4_ratio"] = sum(b["jungfrau"].nbytes for b in batches) / sum(sizes)
    return best


def whole_chain(ranks: int, events: int, workdir: Path) -> float:
    config = {
        "source_identifier": "exp=bench:run=1",
        "event_source": {"type": "SyntheticEventSource", "number_of_events": events, "seed": 5},
        "data_sources": {"jungfrau": {"type": "SyntheticAreaDetector", "detector": "jungfrau4M",
                                      "shape": FRAME_SHAPE},
                         "pulse_id": {"type": "SyntheticScalar", "kind": "pulse_id"}},
        "processing_pipeline": [{"type": "BatchProcessingPipeline", "batch_size": BATCH}],
        "data_serializer": {"type": "HDF5Serializer", "compression": "bitshuffle_lz4",
                            "fields": {"jungfrau": "/entry/data/data", "pulse_id": "/LCLS/pulse_id"}},
        "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": str(workdir / f"out{ranks}"),
                           "file_prefix": "bench"}],
    }
    path = workdir / f"bench{ranks}.yaml"
    path.write_text(yaml.safe_dump(config))
    summary = workdir / f"summary{ranks}.json"
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [str(VENV_BIN / "mpiexec"), "-n", str(ranks), str(VENV_BIN / "lclstreamer"), "-c", str(path),
               "--log-level", "WARNING", "--no-progress", "--summary-json", str(summary)]
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, timeout=1800)
    figures = json.loads(summary.read_text())
    return figures["events"] / figures["elapsed_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=12, help="batches of 8 frames per serialization round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=256, help="events per whole-chain run")
    parser.add_argument("--skip-mpi", action="store_true", help="only the serialization figures")
    args = parser.parse_args()

    print(f"making {args.batches} batches of {BATCH} synthetic {FRAME_SHAPE} uint16 frames...", file=sys.stderr)
    batches = synthetic_batches(args.batches)
    fill = np.mean([np.count_nonzero(b["jungfrau"]) / b["jungfrau"].size for b in batches])
    print(f"serialization, {args.rounds} rounds side by side (non-zero pixels: {fill:.1%})", file=sys.stderr)
    s = serialization(batches, args.rounds)
    print(f"ndarray.tobytes()            {s['tobytes']:7.2f} GB/s")
    print(f"HDF5Serializer none          {s['hdf5_none']:7.2f} GB/s   ratio to tobytes {s['hdf5_none'] / s['tobytes']:.2f}"
          f"  (target >= 0.5)  {'OK' if s['hdf5_none'] / s['tobytes'] >= 0.5 else 'MISSED'}")
    print(f"HDF5Serializer bitshuffle_lz4 {s['hdf5_bslz4']:6.2f} GB/s per core (one process)  (target >= 0.6)  "
          f"{'OK' if s['hdf5_bslz4'] >= 0.6 else 'MISSED'}; compression ratio {s['bslz4_ratio']:.1f}x")
    print(f"HDF5 image via BytesIO       {s['image_bytesio']:7.2f} GB/s vs core driver {s['image_core_driver']:.2f} GB/s"
          f"  (BytesIO/core = {s['image_bytesio'] / s['image_core_driver']:.2f})")
    print(f"SimplonBinarySerializer bslz4 {s['simplon_bslz4']:6.2f} GB/s; MsgpackSerializer (<i4 slabs) "
          f"{s['msgpack_crystfel']:.2f} GB/s of input frames")
    if not args.skip_mpi:
        with tempfile.TemporaryDirectory(prefix="streamer-bench-") as tmp:
            print(f"whole chain, {args.events} events, 1 then 2 ranks...", file=sys.stderr, flush=True)
            one = whole_chain(1, args.events, Path(tmp))
            two = whole_chain(2, args.events, Path(tmp))
        print(f"whole chain 1 rank           {one:7.1f} events/s ({one * 4 * 2**20 / 1e9:.2f} GB/s of frames)")
        print(f"whole chain 2 ranks          {two:7.1f} events/s   ratio {two / one:.2f}  (target >= 1.7)  "
              f"{'OK' if two / one >= 1.7 else 'MISSED'}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end of the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
