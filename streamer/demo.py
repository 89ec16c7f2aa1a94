"""``python -m streamer.demo`` (``make demo``): a synthetic Jungfrau run streamed by 2 MPI ranks into HDF5 files.

Runs ``mpiexec -n 2 lclstreamer -c examples/demo.yaml`` (bitshuffle+LZ4 files under ./demo-output), then reads
the files back with h5py and checks that every event arrived exactly once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (bitshuffle filter for reading the files back)

from streamer.config import load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"
RANKS = 2


def main() -> int:
    if not EXAMPLE.is_file():
        print(f"demo: {EXAMPLE} not found (run from a source checkout)", file=sys.stderr)
        return 2
    config = load_config(EXAMPLE)
    handler = config.data_handlers[0]
    out_dir, prefix = Path(handler.write_directory), handler.file_prefix  # type: ignore[attr-defined]
    for old in out_dir.glob(f"{prefix}_r*.h5"):
        old.unlink()
    bin_dir = Path(sys.executable).parent
    mpiexec = shutil.which("mpiexec", path=str(bin_dir)) or "mpiexec"
    command = [mpiexec, "-n", str(RANKS), str(bin_dir / "lclstreamer"), "-c", str(EXAMPLE)]
    print("demo:", " ".join(command), flush=True)
    status = subprocess.call(command)
    if status != 0:
        return status
    counts: Counter[int] = Counter()
    files = sorted(out_dir.glob(f"{prefix}_r*.h5"))
    stored = raw = 0
    for path in files:
        with h5py.File(path, "r") as f:
            counts.update(int(p) for p in f["/LCLS/pulse_id"][()])
            data = f["/entry/data/data"]
            raw += data.size * data.dtype.itemsize
        stored += path.stat().st_size
    total = config.event_source.number_of_events  # type: ignore[attr-defined]
    complete = sorted(counts) == list(range(total)) and set(counts.values()) <= {1}
    print(f"demo: {len(files)} files in {out_dir}/, {sum(counts.values())} events, "
          f"{'every event exactly once' if complete else 'INCOMPLETE or duplicated'}; "
          f"{stored / 1e6:.1f} MB on disk for {raw / 1e6:.1f} MB of frames ({raw / max(stored, 1):.1f}x)")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
