"""LiveRunEventSource against a real DAQ: ``lclstream-elog run`` writes a run while ``mpiexec -n 2
lclstreamer`` streams it to a real pynng receiver; closed runs read like recorded ones; an idle open run
and a missing run directory fail with one clear error, never a hang."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from elog.client import LocalElog
from elog.records import RunState
from streamer.base import RunContext
from streamer.config import load_config
from streamer.mpi import split_events, stride_events
from streamer.run_dir import read_manifest, run_dir_for
from streamer.runner import Chain
from streamer.sources.synthetic_detectors import SyntheticAreaDetector, SyntheticAreaDetectorConfig
from tests.elog.helpers import cli_env, elog, finish, interrupt, kill, start_daq, wait_for
from tests.fixtures.net import free_port
from tests.streamer.conftest import REPO, VENV_BIN

EXPERIMENT = "mfxlive01"
SHAPE = (2, 32, 48)
SEED = 5


def live_config(run_dir: Path, handler: dict[str, Any], idle_timeout: float = 60.0) -> dict[str, Any]:
    return {
        "source_identifier": f"exp={EXPERIMENT}:run=live",
        "event_source": {"type": "LiveRunEventSource", "run_dir": str(run_dir), "idle_timeout": idle_timeout,
                         "poll_interval": 0.02},
        "data_sources": {"epix": {"type": "HDF5Dataset", "dataset": "/data/epix10k2M"},
                         "pulse_id": {"type": "HDF5Dataset", "dataset": "/LCLS/pulse_id"},
                         "timestamp": {"type": "HDF5Dataset", "dataset": "/LCLS/timestamp"}},
        "processing_pipeline": [{"type": "BatchProcessingPipeline", "batch_size": 3}],
        "data_serializer": {"type": "HDF5Serializer", "compression": "bitshuffle_lz4",
                            "fields": {"epix": "/entry/data/data", "pulse_id": "/LCLS/pulse_id",
                                       "timestamp": "/LCLS/timestamp"}},
        "data_handlers": [handler],
    }


def daq_args(data_root: Path, run: int, *more: str) -> list[str]:
    return ["--instrument", "MFX", "--experiment", EXPERIMENT, "--run", str(run), "--detector", "epix10k2M",
            "--shape", ",".join(map(str, SHAPE)), "--seed", str(SEED), "--data-root", str(data_root),
            "--no-kafka", "--no-progress", *more]


def write(tmp_path: Path, config: dict[str, Any], name: str = "live.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def lclstreamer(config: Path, ranks: int | None, **popen: Any) -> subprocess.Popen[str]:
    command = [str(VENV_BIN / "lclstreamer"), "-c", str(config), "--log-level", "INFO"]
    if ranks is not None:
        command = [str(VENV_BIN / "mpiexec"), "-n", str(ranks), *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
                            stdin=subprocess.DEVNULL, start_new_session=True, **popen)


def stream(config: Path, ranks: int | None, timeout: float = 180) -> tuple[int, str, str]:
    """Run the streamer to its end: (exit status, stdout, stderr)."""
    streamer = lclstreamer(config, ranks)
    try:
        out, err = finish(streamer, timeout)
    finally:
        kill(streamer)
    return streamer.returncode, out, err


def expected_frame(index: int) -> np.ndarray:
    config = SyntheticAreaDetectorConfig(type="SyntheticAreaDetector", detector="epix10k2M", shape=SHAPE)
    return SyntheticAreaDetector("epix10k2M", config, RunContext("x"), seed=SEED).extract(index)


def recorded_run(tmp_path: Path, run: int, events: int, per_file: int) -> Path:
    """A closed run written by the real DAQ (fast: a high rate, no Kafka)."""
    done = elog(["run", *daq_args(tmp_path / "runs", run, "--events", str(events), "--rate", "2000",
                                  "--events-per-file", str(per_file))])
    assert done.returncode == 0, done.stderr
    return run_dir_for(tmp_path / "runs", EXPERIMENT, run)


def test_strided_shares_cover_every_event_once() -> None:
    for nranks in (1, 2, 3):
        for total in (0, 1, 7, 20):
            shares = [stride_events(rank, nranks, total) for rank in range(nranks)]
            assert sorted(i for share in shares for i in share) == list(range(total))
        assert [stride_events(r, nranks)[2] for r in range(nranks)] == [2 * nranks + r for r in range(nranks)]


def test_a_live_run_streams_every_event_once_over_two_ranks(tmp_path: Path) -> None:
    data_root = tmp_path / "runs"
    run_dir = run_dir_for(data_root, EXPERIMENT, 1)
    url = f"tcp://127.0.0.1:{free_port()}"
    handler = {"type": "NNGPushDataHandler", "url": url, "role": "client", "connect_timeout_s": 120}
    config = write(tmp_path, live_config(run_dir, handler))
    processes: list[subprocess.Popen[str]] = []
    try:
        daq = start_daq(daq_args(data_root, 1, "--rate", "40", "--events-per-file", "25"))  # until Ctrl-C
        processes.append(daq)
        wait_for(lambda: (run_dir / "run.json").exists() or daq.poll() is not None, 120, what="the run directory")
        receiver = subprocess.Popen([sys.executable, "-m", "tests.streamer.live_receiver", url, "2", "400"],
                                    cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
        processes.append(receiver)
        assert receiver.stdout is not None
        assert json.loads(receiver.stdout.readline())["event"] == "listening"
        streamer = lclstreamer(config, ranks=2)
        processes.append(streamer)
        first = json.loads(receiver.stdout.readline())  # blocks until the first event arrived
        assert first["event"] == "first", receiver.stderr.read() if receiver.stderr else ""
        assert read_manifest(run_dir).state == "open", "the first event came while the run takes data"
        wait_for(lambda: len(read_manifest(run_dir).files) >= 3, 120, what="two rollovers while streaming")
        assert streamer.poll() is None, "the streamer waits for the run while it is open"
        daq_out, daq_err = interrupt(daq)  # Ctrl-C: the run ends cleanly
        assert daq.returncode == 0, daq_err
        streamer_out, streamer_err = finish(streamer, timeout=180)  # ends on its own once the run is read
        assert streamer.returncode == 0, streamer_err
        report = json.loads(finish(receiver, timeout=120)[0].strip().splitlines()[-1])
    finally:
        for proc in processes:
            kill(proc)
    with LocalElog(data_root / "elog.sqlite") as records:
        record = records.get(EXPERIMENT, 1)
    assert record.state == RunState.CLOSED and record.event_count is not None and record.event_count > 50
    assert report["complete"], report["gaps"]
    assert Counter(report["pulse_ids"]) == Counter(range(record.event_count)), "every event exactly once"
    assert report["first_time"] < record.stop_time.timestamp()  # type: ignore[union-attr]
    assert f"{record.event_count} events" in streamer_out and "on 2 ranks" in streamer_out
    assert f"closed: {record.event_count} events in {len(record.files)} files" in daq_out
    manifest = read_manifest(run_dir)
    assert manifest.state == "closed" and manifest.event_count == record.event_count
    assert [str(run_dir / f.name) for f in manifest.files] == record.files and len(record.files) >= 3


def test_a_closed_run_is_read_like_a_recorded_run(tmp_path: Path) -> None:
    run_dir = recorded_run(tmp_path, run=2, events=23, per_file=10)
    out = tmp_path / "out"
    handler = {"type": "BinaryFileWritingDataHandler", "write_directory": str(out), "file_prefix": "live"}
    config = write(tmp_path, live_config(run_dir, handler, idle_timeout=1))
    chain = Chain(load_config(config), RunContext("x"))
    try:
        assert chain.source.number_of_events() == 23, "a closed run has a known total"
        events = list(chain.source.events(range(23)))
    finally:
        chain.source.close()
    assert [int(e["pulse_id"]) for e in events] == list(range(23))
    for index in (0, 9, 10, 22):  # across file boundaries: the DAQ's pixels are the synthetic detector's
        np.testing.assert_array_equal(events[index]["epix"], expected_frame(index))
    code, _out, err = stream(config, 2, timeout=180)
    assert code == 0, err
    blocks: dict[int, list[int]] = {}
    for path in out.glob("*.h5"):
        with h5py.File(path, "r") as f:
            blocks.setdefault(int(f.attrs["rank"]), []).extend(int(p) for p in f["/LCLS/pulse_id"][()])
    assert {rank: sorted(ids) for rank, ids in blocks.items()} == {
        rank: list(split_events(23, rank, 2)) for rank in (0, 1)}, "a known total keeps the contiguous split"


def test_the_shipped_example_streams_a_run(tmp_path: Path) -> None:
    run_dir = recorded_run(tmp_path, run=3, events=6, per_file=4)
    example = yaml.safe_load((REPO / "examples" / "source-live.yaml").read_text())
    example["event_source"]["run_dir"] = str(run_dir)
    example["data_sources"]["jungfrau"]["dataset"] = "/data/epix10k2M"  # the small run has an epix detector
    example["data_handlers"] = [{"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path / "o")}]
    code, out, err = stream(write(tmp_path, example), None, timeout=180)
    assert code == 0, err
    assert "6 events" in out


@pytest.mark.parametrize("ranks", [None, 2], ids=["one-rank", "mpiexec-n2"])
def test_an_idle_open_run_fails_clearly_instead_of_hanging(tmp_path: Path, ranks: int | None) -> None:
    started = elog(["start", "--instrument", "MFX", "--experiment", EXPERIMENT, "--run", "4",
                    "--detector", "epix10k2M", "--data-root", str(tmp_path / "runs"), "--no-kafka"])
    assert started.returncode == 0, started.stderr
    run_dir = run_dir_for(tmp_path / "runs", EXPERIMENT, 4)
    config = live_config(run_dir, {"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path)},
                         idle_timeout=2)
    config["data_sources"] = {"pulse_id": {"type": "HDF5Dataset", "dataset": "/LCLS/pulse_id"}}
    config["data_serializer"]["fields"] = {"pulse_id": "/LCLS/pulse_id"}
    code, _out, err = stream(write(tmp_path, config), ranks, timeout=180)
    assert code != 0
    assert f"run {EXPERIMENT}/4 in {run_dir} is still open but no new event came for" in err
    assert "idle_timeout 2 s" in err
    if ranks is None:
        assert code == 1 and "Traceback" not in err


def test_a_missing_run_directory_is_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "runs" / EXPERIMENT / "r0099"
    config = live_config(missing, {"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path)})
    code, _out, err = stream(write(tmp_path, config), None, timeout=120)
    assert code == 2
    assert err.strip() == f"lclstreamer: error: run directory {missing} does not exist"


def test_a_dataset_the_run_does_not_have_is_named(tmp_path: Path) -> None:
    run_dir = recorded_run(tmp_path, run=5, events=2, per_file=10)
    config = live_config(run_dir, {"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path)})
    config["data_sources"]["epix"]["dataset"] = "/data/jungfrau4M"
    code, _out, err = stream(write(tmp_path, config), None, timeout=120)
    assert code == 2
    assert "data source 'epix': dataset '/data/jungfrau4M' is not in run mfxlive01/5" in err
    assert "Traceback" not in err
