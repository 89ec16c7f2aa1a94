"""The DAQ stand-in: a run that takes data, with its record and its Kafka run events.

``begin_run`` opens the run record (ELog service or local file), prepares the run directory and publishes
run_start, waiting for the broker's acknowledgement; ``Daq.take_data`` then writes events at the given
rate into growing SWMR HDF5 files (``elog.run_files.RunFileWriter``) until the duration or event count is
reached or ``stop`` is set (Ctrl-C, SIGTERM); ``end_run`` closes the record with the event count and
file list and publishes run_stop. ``lclstream-elog start`` / ``stop`` call ``begin_run`` / ``end_run``
alone, for runs whose files something else writes.

Event ``i`` carries the synthetic detectors of ``streamer/`` (the same pixels as event ``i`` of a
``SyntheticEventSource`` with the same seed, named after the detector), ``pulse_id = i`` and
``timestamp``, the time the DAQ took it (seconds since the epoch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, model_validator

from elog.client import RunRecords
from elog.publisher import RunEventPublisher
from elog.records import RunClose, RunOpen, RunRecord, RunState
from elog.run_files import RunFileWriter
from streamer.base import RunContext
from streamer.progress import Progress
from streamer.run_dir import RunManifest, read_manifest, write_manifest
from streamer.serializers.hdf5 import Compression
from streamer.sources.synthetic_detectors import SyntheticAreaDetector, SyntheticAreaDetectorConfig

log = logging.getLogger("elog.daq")
DetectorType = Literal["jungfrau4M", "epix10k2M"]
MAX_BLOCK = 64  # events written between two flushes when the DAQ is behind schedule


class StopFlag:
    """Asks the DAQ to end its run. Safe to set from a signal handler: it takes no lock (``threading.Event``
    does, so its ``set()`` in a handler can deadlock with the interrupted ``wait()``)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str = "stop requested") -> None:
        if self.reason is None:
            self.reason = reason

    def is_set(self) -> bool:
        return self.reason is not None

    def wait(self, timeout: float, step: float = 0.02) -> bool:
        """Sleep up to ``timeout`` seconds, returning early (True) once set."""
        deadline = time.monotonic() + timeout
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(step, left))
        return True


class DaqSettings(BaseModel):
    """What ``lclstream-elog run`` takes data with (validated before anything is opened)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    detectors: list[DetectorType] = Field(min_length=1, max_length=16, description="synthetic detectors")
    shape: tuple[int, int, int] | None = Field(None, description="(panels, height, width) for every detector, "
                                                                 "e.g. small frames for tests")
    rate: float = Field(120.0, gt=0, le=100_000, description="events per second")
    duration: float | None = Field(None, gt=0, le=30 * 86400, description="seconds; default: until stopped")
    events: int | None = Field(None, ge=0, le=10**9, description="events; overrides duration")
    events_per_file: int = Field(1000, ge=1, le=10**7, description="roll over to a new file after this many")
    compression: Compression = "bitshuffle_lz4"
    seed: int = Field(0, ge=0)
    start_delay: float = Field(0.0, ge=0, le=3600, description="seconds between run_start and the first event "
                                                               "(a real DAQ's configure time)")

    @model_validator(mode="after")
    def _shape(self) -> DaqSettings:
        if self.shape is not None and min(self.shape) < 1:
            raise ValueError(f"shape: every dimension must be 1 or more, got {self.shape}")
        if len(set(self.detectors)) != len(self.detectors):
            raise ValueError("detectors: each detector once")
        return self

    @property
    def total(self) -> int | None:
        """Events to take; None: until stopped."""
        if self.events is not None:
            return self.events
        return round(self.duration * self.rate) if self.duration is not None else None


class DaqResult(BaseModel):
    """What a run took: the closed record and the DAQ's own figures."""

    record: RunRecord
    elapsed_s: float
    rate_hz: float = Field(description="events per second achieved")
    requested_rate_hz: float
    raw_bytes: int = Field(description="detector bytes before compression")
    file_bytes: int = Field(description="bytes of the run's files on disk")
    max_lag_s: float = Field(description="how far behind schedule the DAQ fell at worst")
    stopped_early: bool = Field(description="ended by Ctrl-C or SIGTERM before its duration")

    def to_text(self) -> str:
        rec = self.record
        lines = [f"run {rec.key} ({rec.instrument}) closed: {rec.event_count} events in {len(rec.files)} files, "
                 f"{self.elapsed_s:.1f} s, {self.rate_hz:.1f} events/s of {self.requested_rate_hz:g} requested"
                 + (", stopped early" if self.stopped_early else ""),
                 f"  run_dir {rec.run_dir}",
                 f"  {self.raw_bytes / 1e6:.1f} MB of detector data, {self.file_bytes / 1e6:.1f} MB on disk; "
                 f"at worst {self.max_lag_s:.2f} s behind schedule"]
        return "\n".join(lines)


def prepare_run_dir(record: RunRecord) -> Path:
    """Create the run's directory with an open manifest (no files yet)."""
    if not record.run_dir:
        raise ValueError(f"run {record.key} has no run directory")
    run_dir = Path(record.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(run_dir, RunManifest(instrument=record.instrument, experiment=record.experiment, run=record.run))
    return run_dir


def begin_run(records: RunRecords, publisher: RunEventPublisher | None, request: RunOpen,
              prepare: Callable[[RunRecord], Any] = prepare_run_dir) -> RunRecord:
    """Open the run record, prepare its directory, publish run_start (acknowledged). If the directory or
    the event fails, the run is closed empty so that no run stays open, and the error is raised."""
    record = records.open_run(request)
    log.info("run %s opened (%s, run_dir %s)", record.key, record.instrument, record.run_dir)
    try:
        prepare(record)
        if publisher is not None:
            publisher.publish(record.start_event())
    except BaseException:
        records.close_run(record.experiment, record.run, RunClose(event_count=0))
        log.error("run %s closed empty: it could not start", record.key)
        raise
    return record


def end_run(records: RunRecords, publisher: RunEventPublisher | None, record: RunRecord, files: list[str],
            event_count: int) -> RunRecord:
    """Close the run record with what it recorded, then publish run_stop (acknowledged)."""
    closed = records.close_run(record.experiment, record.run, RunClose(event_count=event_count, files=files))
    log.info("run %s closed: %d events in %d files", closed.key, event_count, len(files))
    if publisher is not None:
        publisher.publish(closed.stop_event())
    return closed


def close_run_dir(run_dir: Path) -> tuple[list[str], int]:
    """Mark a run directory's manifest closed (``lclstream-elog stop``); (file paths, event count).
    Refused while a file is still being written."""
    manifest = read_manifest(run_dir)
    growing = [entry.name for entry in manifest.files if not entry.complete]
    if manifest.state == "open" and growing:
        raise ValueError(f"{run_dir}: {', '.join(growing)} is still being written; stop the DAQ that writes "
                         "it (Ctrl-C) instead")
    count = sum(entry.events for entry in manifest.files)
    if manifest.state == "open":
        write_manifest(run_dir, manifest.model_copy(update={"state": "closed", "event_count": count}))
    return [str(run_dir / entry.name) for entry in manifest.files], count


class Daq:
    """Takes data for one opened run: ``take_data()`` writes events until done or ``stop`` is set."""

    def __init__(self, record: RunRecord, settings: DaqSettings, stop: StopFlag | None = None,
                 progress: bool | None = None, progress_stream: TextIO | None = None) -> None:
        if record.state != RunState.OPEN or not record.run_dir:
            raise ValueError(f"run {record.key} is not open with a run directory")
        self.record = record
        self.settings = settings
        self.stop = stop or StopFlag()
        context = RunContext(f"exp={record.experiment}:run={record.run}")
        self.detectors: dict[str, SyntheticAreaDetector] = {}
        for name in settings.detectors:
            config = SyntheticAreaDetectorConfig(type="SyntheticAreaDetector", detector=name, shape=settings.shape)
            self.detectors[name] = SyntheticAreaDetector(name, config, context, seed=settings.seed)
        layout = {name: (det.shape, "uint16") for name, det in self.detectors.items()}
        manifest = RunManifest(instrument=record.instrument, experiment=record.experiment, run=record.run)
        self.writer = RunFileWriter(Path(record.run_dir), manifest, layout, settings.events_per_file,
                                    settings.compression)
        self.bar = Progress(settings.total or 0, label=f"run {record.key}: ", enabled=progress,
                            stream=progress_stream)
        self.max_lag = 0.0

    def event(self, index: int) -> dict[str, Any]:
        event: dict[str, Any] = {name: det.extract(index) for name, det in self.detectors.items()}
        event["pulse_id"] = index
        event["timestamp"] = time.time()
        return event

    def take_data(self) -> tuple[list[str], int, float]:
        """Write events on schedule; always closes the files. (file paths, events, seconds taken)."""
        for det in self.detectors.values():
            det.prepare()
        if self.settings.start_delay:
            log.info("run %s: first event in %g s", self.record.key, self.settings.start_delay)
            self.stop.wait(self.settings.start_delay)
        total = self.settings.total
        rate = self.settings.rate
        written = 0
        started = time.monotonic()
        try:
            while not self.stop.is_set() and (total is None or written < total):
                now = time.monotonic()
                due = int((now - started) * rate) + 1
                if total is not None:
                    due = min(due, total)
                if due <= written:
                    self.stop.wait(max(0.0, started + written / rate - now))
                    continue
                self.max_lag = max(self.max_lag, now - (started + written / rate))
                block = [self.event(index) for index in range(written, min(due, written + MAX_BLOCK))]
                before = self.writer.bytes_written
                self.writer.write(block)
                written += len(block)
                self.bar.update(len(block), self.writer.bytes_written - before)
        finally:
            elapsed = time.monotonic() - started
            if self.stop.is_set():
                log.warning("run %s: %s after %d events; closing its files", self.record.key, self.stop.reason,
                            written)
            files, count = self.writer.close()
            self.bar.finish()
        return files, count, elapsed

    def result(self, closed: RunRecord, elapsed: float) -> DaqResult:
        count = closed.event_count or 0
        file_bytes = sum(Path(f).stat().st_size for f in closed.files if Path(f).exists())
        total = self.settings.total
        return DaqResult(record=closed, elapsed_s=elapsed, rate_hz=count / elapsed if elapsed > 0 else 0.0,
                         requested_rate_hz=self.settings.rate, raw_bytes=self.writer.bytes_written,
                         file_bytes=file_bytes, max_lag_s=self.max_lag,
                         stopped_early=total is not None and count < total)
