"""The DAQ (``lclstream-elog run/start/stop``) against a real Kafka broker and a real ELog service: one
run_start and one run_stop per run in both wire forms, acknowledged before the first event and after the
last; Ctrl-C and SIGTERM end a run cleanly; files hold the synthetic detector, compressed."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
from kafka import KafkaConsumer

from elog.client import LocalElog
from elog.events import RunEvent, RunEventKind, parse_run_event
from elog.records import RunState
from streamer.base import RunContext
from streamer.run_dir import read_manifest
from streamer.sources.synthetic_detectors import SyntheticAreaDetector, SyntheticAreaDetectorConfig
from tests.elog.helpers import ElogService, cli_env, elog, interrupt, kill, start_daq, wait_for
from tests.fixtures.net import free_port
from tests.fixtures.terminal import Terminal

BITSHUFFLE_FILTER = "32008"


def consume(bootstrap: str, topic: str, expected: int, settle_s: float = 3.0) -> list[tuple[bytes, bytes, int]]:
    """Every message of ``topic`` (key, value, timestamp ms): reads until ``expected`` came and then
    ``settle_s`` more without a new one, so a duplicate would be seen."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4().hex}",
                             auto_offset_reset="earliest", consumer_timeout_ms=int(settle_s * 1000))
    received: list[tuple[bytes, bytes, int]] = []
    try:
        for _ in range(60):  # bounded: each pass ends after settle_s without a message
            before = len(received)
            for record in consumer:
                received.append((record.key, record.value, record.timestamp))
            if len(received) >= expected and len(received) == before:
                break
    finally:
        consumer.close()
    return received


def small_run(data_root: Path, experiment: str, *more: str) -> list[str]:
    return ["--instrument", "MFX", "--experiment", experiment, "--detector", "epix10k2M", "--shape", "1,16,16",
            "--data-root", str(data_root), *more]


@pytest.mark.parametrize("wire", ["lclstream", "elog"])
def test_each_run_publishes_one_run_start_and_one_run_stop(kafka_bootstrap: str, service: ElogService,
                                                           tmp_path: Path, wire: str) -> None:
    topic = f"runs-{uuid.uuid4().hex}"
    experiment = f"mfxkafka{wire}"
    results = []
    for _ in range(2):
        done = elog(["run", *small_run(tmp_path / "runs", experiment, "--events", "24", "--rate", "200",
                                       "--events-per-file", "10"),
                     "--elog", "elog", "--bootstrap", kafka_bootstrap, "--topic", topic, "--format", wire, "--json"],
                    env=cli_env({"CERTIFIED_CONFIG": str(service.pki.user_dir("daq"))}))
        assert done.returncode == 0, done.stderr
        results.append(json.loads(done.stdout))
    messages = consume(kafka_bootstrap, topic, expected=4)
    events: list[tuple[RunEvent, int]] = []
    for key, value, timestamp in messages:
        assert key == experiment.encode(), "run events are keyed by experiment"
        event = parse_run_event(value)
        assert event is not None and event.source_format == wire
        events.append((event, timestamp))
    for result in results:
        record = result["record"]
        mine = [(e, t) for e, t in events if e.run == record["run"]]
        assert sorted(e.type for e, _ in mine) == [RunEventKind.RUN_START, RunEventKind.RUN_STOP], mine
        (start, start_ms), = [(e, t) for e, t in mine if e.type == RunEventKind.RUN_START]
        (stop, stop_ms), = [(e, t) for e, t in mine if e.type == RunEventKind.RUN_STOP]
        assert start.run_dir == stop.run_dir == record["run_dir"] and start.detectors == ["epix10k2M"]
        assert stop.event_count == record["event_count"] == 24 and stop.files == record["files"]
        assert len(stop.files) == 3
        with h5py.File(stop.files[0], "r") as f:
            first_taken = float(f["/LCLS/timestamp"][0])
        with h5py.File(stop.files[-1], "r") as f:
            last_taken = float(f["/LCLS/timestamp"][-1])
        assert start_ms / 1000 <= first_taken + 0.001, "run_start was sent before the first event was taken"
        assert stop_ms / 1000 >= last_taken - 0.001, "run_stop was sent after the last event"
    with service.client("alice") as records:
        assert [r.run for r in records.runs(experiment=experiment, state="closed")] == [2, 1]


def test_only_a_writer_identity_takes_runs(service: ElogService, tmp_path: Path) -> None:
    done = elog(["run", *small_run(tmp_path / "runs", "mfxnotwriter01", "--events", "5"), "--elog", "elog",
                 "--no-kafka"], env=cli_env({"CERTIFIED_CONFIG": str(service.pki.user_dir("alice"))}))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "lclstream-elog: ELog error 403: alice may not open or close runs: only the service's writers may")
    assert not (tmp_path / "runs").exists()


def read_run(files: list[str]) -> tuple[list[int], dict[int, np.ndarray], list[str]]:
    pulse_ids: list[int] = []
    frames: dict[int, np.ndarray] = {}
    filters: list[str] = []
    for path in files:
        with h5py.File(path, "r") as f:
            ids = f["/LCLS/pulse_id"][()]
            data = f["/data/epix10k2M"]
            filters.extend(data._filters)
            for offset, pid in enumerate(ids):
                frames[int(pid)] = data[offset]
            pulse_ids.extend(int(p) for p in ids)
    return pulse_ids, frames, filters


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_ends_the_run_cleanly(kafka_bootstrap: str, tmp_path: Path, sig: int) -> None:
    topic = f"runs-{uuid.uuid4().hex}"
    data_root = tmp_path / "runs"
    daq = start_daq([*small_run(data_root, "mfxsignal01", "--rate", "100", "--events-per-file", "20", "--seed", "3"),
                     "--bootstrap", kafka_bootstrap, "--topic", topic])
    run_dir = data_root / "mfxsignal01" / "r0001"
    try:
        wait_for(lambda: (run_dir / "run.json").exists() and len(read_manifest(run_dir).files) >= 2
                 or daq.poll() is not None, 120, what="a rollover")
        out, err = interrupt(daq, sig)
    finally:
        kill(daq)
    assert daq.returncode == 0, err
    assert f"{signal.Signals(sig).name} after" in err and "Traceback" not in err
    with LocalElog(data_root / "elog.sqlite") as records:
        record = records.get("mfxsignal01", 1)
    manifest = read_manifest(run_dir)
    assert record.state == RunState.CLOSED and manifest.state == "closed"
    assert all(entry.complete for entry in manifest.files)
    assert manifest.event_count == record.event_count == sum(e.events for e in manifest.files) > 20
    pulse_ids, frames, filters = read_run(record.files)  # closed files open without SWMR
    assert pulse_ids == list(range(record.event_count))
    config = SyntheticAreaDetectorConfig(type="SyntheticAreaDetector", detector="epix10k2M", shape=(1, 16, 16))
    detector = SyntheticAreaDetector("epix10k2M", config, RunContext("x"), seed=3)
    for index in (0, 19, 20, record.event_count - 1):
        np.testing.assert_array_equal(frames[index], detector.extract(index))
    assert BITSHUFFLE_FILTER in filters, "detector data is written compressed (bitshuffle+LZ4)"
    assert f"closed: {record.event_count} events in {len(record.files)} files" in out
    stops = [parse_run_event(v) for _k, v, _t in consume(kafka_bootstrap, topic, expected=2)]
    assert [e.type for e in stops if e] == [RunEventKind.RUN_START, RunEventKind.RUN_STOP]
    assert stops[-1] is not None and stops[-1].event_count == record.event_count


def test_start_and_stop_by_hand(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"runs-{uuid.uuid4().hex}"
    common = ["--data-root", str(tmp_path / "runs"), "--bootstrap", kafka_bootstrap, "--topic", topic]
    started = elog(["start", "--instrument", "CXI", "--experiment", "cxihand01", "--detector", "jungfrau4M",
                    "--param", "sample=lysozyme", "--param", "energy_ev=9500", *common])
    assert started.returncode == 0, started.stderr
    assert started.stdout.splitlines()[0] == "1"
    stopped = elog(["stop", "cxihand01", "1", "--json", *common])
    assert stopped.returncode == 0, stopped.stderr
    record = json.loads(stopped.stdout)
    assert record["state"] == "closed" and record["event_count"] == 0
    assert record["params"] == {"sample": "lysozyme", "energy_ev": 9500}
    again = elog(["stop", "cxihand01", "1", *common])
    assert again.returncode == 1 and "closed already" in again.stderr
    events = [parse_run_event(v) for _k, v, _t in consume(kafka_bootstrap, topic, expected=2)]
    assert [(e.type, e.instrument, e.run) for e in events if e] == [
        (RunEventKind.RUN_START, "CXI", 1), (RunEventKind.RUN_STOP, "CXI", 1)], "one run_stop, not two"


def test_a_run_shows_progress_with_its_rate_on_a_terminal(tmp_path: Path) -> None:
    with Terminal() as term:
        daq = start_daq([*small_run(tmp_path / "runs", "mfxprogress01", "--events", "60", "--rate", "60"),
                         "--no-kafka"], stderr=term.fd)  # a terminal: progress without asking
        try:
            out, _ = daq.communicate(timeout=120)
        finally:
            kill(daq)
        shown = term.read_all().decode(errors="replace")
    assert daq.returncode == 0, shown
    assert "run mfxprogress01/1: 60/60 events" in shown and "events/s" in shown
    assert "60 events in 1 files" in out


def test_an_unreachable_broker_opens_no_run(tmp_path: Path) -> None:
    port = free_port()
    done = elog(["run", *small_run(tmp_path / "runs", "mfxdown01", "--events", "5"),
                 "--bootstrap", f"127.0.0.1:{port}", "--kafka-timeout", "3"])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"lclstream-elog: Kafka at 127.0.0.1:{port} is not reachable within 3 s")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists(), "no run record, no run directory"
