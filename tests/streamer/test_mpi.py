"""MPI: events split across ranks with no duplicates and no gaps, checked end to end with real mpiexec."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from streamer.base import DataHandler, MessageInfo, RunContext
from streamer.config import load_config
from streamer.mpi import launched_by_mpiexec, split_events
from streamer.runner import Chain, stream_rank
from streamer.sources.synthetic_detectors import SyntheticAreaDetector, SyntheticAreaDetectorConfig
from tests.streamer.conftest import VENV_BIN, cli_env


@pytest.mark.parametrize("nranks", [1, 2, 3, 7])
@pytest.mark.parametrize("total", [0, 1, 5, 20, 101])
def test_split_covers_every_event_once(total: int, nranks: int) -> None:
    shares = [split_events(total, rank, nranks) for rank in range(nranks)]
    covered = [index for share in shares for index in share]
    assert covered == list(range(total))
    assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1


def test_launch_detection() -> None:
    assert not launched_by_mpiexec({})
    assert launched_by_mpiexec({"PMI_RANK": "0", "PMI_SIZE": "2"})


def read_outputs(directory: Path) -> dict[str, list]:
    """pulse ids, detector frames and writer ranks of every HDF5 file a run wrote."""
    out: dict[str, list] = {"pulse_id": [], "detector": [], "rank": []}
    for path in sorted(directory.glob("*.h5")):
        with h5py.File(path, "r") as f:
            pids = f["/LCLS/pulse_id"][()]
            out["pulse_id"].extend(int(p) for p in pids)
            out["detector"].extend(f["/entry/data/data"][()])
            out["rank"].extend([int(f.attrs["rank"])] * len(pids))
            assert int(path.name.split("_r")[1][:4]) == int(f.attrs["rank"]), "file name carries the writer's rank"
    return out


def expected_frame(index: int) -> np.ndarray:
    config = SyntheticAreaDetectorConfig(type="SyntheticAreaDetector", shape=(2, 16, 24), peaks_per_event=3)
    return SyntheticAreaDetector("detector", config, RunContext("x"), seed=7).extract(index)


@pytest.mark.parametrize("ranks", [None, 2], ids=["no-mpiexec", "mpiexec-n2"])
def test_run_writes_a_complete_disjoint_set_of_events(tmp_path: Path, lclstreamer, small_config, write_config,
                                                      ranks: int | None) -> None:
    total = 23
    out_dir = tmp_path / "out"
    config = write_config(small_config(out_dir, number_of_events=total, batch_size=4))
    result = lclstreamer(["-c", str(config), "--log-level", "WARNING"], ranks=ranks)
    assert result.returncode == 0, result.stderr
    outputs = read_outputs(out_dir)
    counts = Counter(outputs["pulse_id"])
    assert sorted(counts) == list(range(total)), "every event exactly once"
    assert set(counts.values()) == {1}, f"duplicates: {[p for p, n in counts.items() if n > 1]}"
    assert set(outputs["rank"]) == set(range(ranks or 1))
    for pid, frame in zip(outputs["pulse_id"], outputs["detector"], strict=True):
        if pid in (0, total // 2, total - 1):
            np.testing.assert_array_equal(frame, expected_frame(pid))
    assert result.stdout.count("lclstreamer exp=test01:run=3:") == 1, "rank 0 prints one summary"
    assert f"{total} events" in result.stdout
    assert f"on {ranks or 1} rank" in result.stdout
    assert "handler 0 BinaryFileWritingDataHandler" in result.stdout


def test_hdf5_replay_under_mpiexec_and_num_events(tmp_path: Path, lclstreamer, write_config) -> None:
    source_file = tmp_path / "recorded.h5"
    with h5py.File(source_file, "w") as f:
        f["/data"] = np.arange(30 * 6, dtype=np.float32).reshape(30, 2, 3)
        f["/pid"] = np.arange(100, 130)
    out_dir = tmp_path / "replay"
    config = write_config({
        "source_identifier": "exp=replay:run=1",
        "event_source": {"type": "HDF5EventSource", "files": [str(source_file)], "read_chunk": 4},
        "data_sources": {"frame": {"type": "HDF5Dataset", "dataset": "/data"},
                         "recorded_pid": {"type": "HDF5Dataset", "dataset": "/pid"},
                         "pulse_id": {"type": "SyntheticScalar", "kind": "pulse_id"}},
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 5},
        "data_serializer": {"type": "HDF5Serializer", "compression": "gzip",
                            "fields": {"frame": "/entry/data/data", "pulse_id": "/LCLS/pulse_id",
                                       "recorded_pid": "/LCLS/recorded"}},
        "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": str(out_dir)}],
    })
    result = lclstreamer(["-c", str(config), "--num-events", "17", "--log-level", "WARNING"], ranks=2)
    assert result.returncode == 0, result.stderr
    seen = {}
    for path in out_dir.glob("*.h5"):
        with h5py.File(path, "r") as f:
            for pid, recorded, frame in zip(f["/LCLS/pulse_id"][()], f["/LCLS/recorded"][()],
                                            f["/entry/data/data"][()], strict=True):
                assert int(pid) not in seen
                seen[int(pid)] = (int(recorded), frame)
    assert sorted(seen) == list(range(17))
    for pid, (recorded, frame) in seen.items():
        assert recorded == 100 + pid
        np.testing.assert_array_equal(frame, np.arange(pid * 6, pid * 6 + 6, dtype=np.float32).reshape(2, 3))


SETUP_SCRIPT = """
import sys
from streamer.base import DataHandler, MessageInfo, RunContext
from streamer.config import load_config
from streamer.mpi import rank_and_size, world_communicator
from streamer.runner import SetupError, setup_together

comm = world_communicator()
rank, nranks = rank_and_size(comm)
context = RunContext("x", rank, nranks, comm)

def step():
    if rank == 1:
        raise FileNotFoundError(2, "No such file or directory", "/data/only-on-rank-1.h5")
    return "ready"

try:
    setup_together(context, step)
except SetupError as exc:
    outcome = f"rank {rank} SetupError: {exc}"
except OSError as exc:
    outcome = f"rank {rank} own error: {exc.filename}"
else:
    outcome = f"rank {rank} carried on"
# one file per rank: mpiexec may interleave the ranks' stdout within a line
with open(f"{sys.argv[1]}/rank{rank}.txt", "w") as f:
    f.write(outcome)
"""


def test_a_setup_failure_on_one_rank_stops_every_rank(tmp_path: Path) -> None:
    script = tmp_path / "setup_check.py"
    script.write_text(SETUP_SCRIPT)
    result = subprocess.run([str(VENV_BIN / "mpiexec"), "-n", "2", sys.executable, str(script), str(tmp_path)],
                            capture_output=True, text=True, timeout=120, env=cli_env(), check=False)
    assert result.returncode == 0, result.stderr
    lines = [(tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)]
    assert lines == ["rank 0 SetupError: rank 1 could not start: No such file or directory: /data/only-on-rank-1.h5",
                     "rank 1 own error: /data/only-on-rank-1.h5"]


class RecordingHandler(DataHandler):
    """A data handler that keeps every MessageInfo it is given (the runner's accounting, seen from a handler)."""

    def __init__(self, config, context) -> None:
        super().__init__(config, context)
        self.infos: list[MessageInfo] = []
        self.calls: list[str] = []

    def open(self) -> None:
        self.calls.append("open")

    def handle(self, message, info: MessageInfo) -> None:
        self.infos.append(info)

    def flush(self) -> None:
        self.calls.append("flush")

    def close(self) -> None:
        self.calls.append("close")


@pytest.mark.parametrize(("serializer", "per_message"), [
    ({"type": "HDF5Serializer", "fields": {"pulse_id": "/pid"}}, [3, 3, 1]),
    ({"type": "MsgpackSerializer"}, [1] * 7),
])
def test_message_accounting_per_rank(tmp_path: Path, serializer: dict, per_message: list[int]) -> None:
    config = load_config({
        "source_identifier": "exp=acc:run=1",
        "event_source": {"type": "SyntheticEventSource", "number_of_events": 7},
        "data_sources": {"pulse_id": {"type": "SyntheticScalar", "kind": "pulse_id"}},
        "processing_pipeline": [{"type": "BatchProcessingPipeline", "batch_size": 3}],
        "data_serializer": serializer,
        "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path)}],
    })
    chain = Chain(config, RunContext("exp=acc:run=1"))
    handler = RecordingHandler(config.data_handlers[0], chain.context)
    chain.handlers = [handler]
    chain.open_handlers()
    summary = stream_rank(chain, range(7), False)
    assert [info.seq for info in handler.infos] == list(range(len(handler.infos)))
    data = [info.event_count for info in handler.infos if info.event_count]
    assert data == per_message
    assert {(info.rank, info.nranks) for info in handler.infos} == {(0, 1)}
    assert handler.calls == ["open", "flush", "flush", "close"]
    assert summary.events == 7 and summary.messages == len(handler.infos)
