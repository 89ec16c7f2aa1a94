"""The DAQ's file writer: a run's events into growing SWMR HDF5 files, rolled over every N events.

One file is open at a time. Each is created with the latest file format, gets its datasets (detector
frames chunked one event per chunk and compressed, bitshuffle+LZ4 by default; pulse ids and timestamps),
enters SWMR mode, and only then is listed in the run's ``run.json`` manifest (see
``streamer.run_dir``), so a reader may open every listed file while it grows. ``write`` extends
and fills the detector datasets, then timestamps, then pulse ids (the commit dataset), then flushes once;
rolling over closes the file and marks it complete in the manifest; ``close`` marks the run closed.

    writer = RunFileWriter(run_dir, manifest, {"jungfrau4M": ((8, 512, 1024), "uint16")}, events_per_file=1000)
    writer.write([{"jungfrau4M": frame, "pulse_id": 0, "timestamp": time.time()}])
    files, count = writer.close()
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from streamer.run_dir import (
    PULSE_ID_DATASET,
    TIMESTAMP_DATASET,
    UNWRITTEN,
    RunFileEntry,
    RunManifest,
    detector_dataset,
    file_name,
    write_manifest,
)
from streamer.serializers.hdf5 import Compression, filter_options

log = logging.getLogger("elog.daq")
SCALAR_CHUNK = 1024


class RunFileWriter:
    """Writes events into ``run_dir`` and keeps its manifest; ``close()`` returns (file paths, event count)."""

    def __init__(self, run_dir: Path, manifest: RunManifest, detectors: dict[str, tuple[Sequence[int], str]],
                 events_per_file: int = 1000, compression: Compression = "bitshuffle_lz4") -> None:
        if events_per_file < 1:
            raise ValueError(f"events_per_file must be 1 or more, got {events_per_file}")
        self.run_dir = run_dir
        self.detectors = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in detectors.items()}
        self.events_per_file = events_per_file
        self.filters = filter_options(compression, None)
        datasets = {name: detector_dataset(name) for name in self.detectors}
        datasets |= {"pulse_id": PULSE_ID_DATASET, "timestamp": TIMESTAMP_DATASET}
        self.manifest = manifest.model_copy(update={"datasets": datasets, "files": [], "state": "open"})
        self.file: h5py.File | None = None
        self.in_file = 0
        self.event_count = 0
        self.bytes_written = 0
        run_dir.mkdir(parents=True, exist_ok=True)
        write_manifest(run_dir, self.manifest)

    @property
    def paths(self) -> list[str]:
        return [str(self.run_dir / entry.name) for entry in self.manifest.files]

    def _open_next(self) -> None:
        chunk = len(self.manifest.files)
        name = file_name(self.manifest.experiment, self.manifest.run, chunk)
        handle = h5py.File(self.run_dir / name, "w", libver="latest")
        try:
            for det, (shape, dtype) in self.detectors.items():
                handle.create_dataset(detector_dataset(det), shape=(0, *shape), maxshape=(None, *shape),
                                      dtype=dtype, chunks=(1, *shape), **self.filters)
            handle.create_dataset(PULSE_ID_DATASET, shape=(0,), maxshape=(None,), dtype=np.int64,
                                  chunks=(SCALAR_CHUNK,), fillvalue=UNWRITTEN)
            handle.create_dataset(TIMESTAMP_DATASET, shape=(0,), maxshape=(None,), dtype=np.float64,
                                  chunks=(SCALAR_CHUNK,))
            handle.swmr_mode = True  # from here on readers may follow the file
        except BaseException:
            handle.close()
            raise
        self.file = handle
        self.in_file = 0
        self.manifest.files.append(RunFileEntry(name=name))
        write_manifest(self.run_dir, self.manifest)
        log.info("run %s/%d: file %s open", self.manifest.experiment, self.manifest.run, name)

    def _close_file(self) -> None:
        if self.file is None:
            return
        self.file.close()
        self.file = None
        entry = self.manifest.files[-1]
        self.manifest.files[-1] = entry.model_copy(update={"events": self.in_file, "complete": True})
        write_manifest(self.run_dir, self.manifest)
        log.info("run %s/%d: file %s complete, %d events", self.manifest.experiment, self.manifest.run,
                 entry.name, self.in_file)

    def write(self, events: list[dict[str, Any]]) -> None:
        """Append events (each ``{detector: frame, ..., "pulse_id": int, "timestamp": float}``), rolling over
        to a new file whenever the open one holds ``events_per_file``; one flush per file touched."""
        done = 0
        while done < len(events):
            if self.file is not None and self.in_file >= self.events_per_file:
                self._close_file()
            if self.file is None:
                self._open_next()
            assert self.file is not None
            take = events[done:done + self.events_per_file - self.in_file]
            self._append(self.file, take)
            done += len(take)

    def _append(self, handle: h5py.File, events: list[dict[str, Any]]) -> None:
        start, stop = self.in_file, self.in_file + len(events)
        for det in self.detectors:
            dataset = handle[detector_dataset(det)]
            dataset.resize(stop, axis=0)
            for offset, event in enumerate(events):
                frame = event[det]
                dataset[start + offset] = frame
                self.bytes_written += frame.nbytes
        timestamps = handle[TIMESTAMP_DATASET]
        timestamps.resize(stop, axis=0)
        timestamps[start:stop] = [event["timestamp"] for event in events]
        pulse_ids = handle[PULSE_ID_DATASET]
        pulse_ids.resize(stop, axis=0)
        pulse_ids[start:stop] = [event["pulse_id"] for event in events]
        handle.flush()
        self.in_file = stop
        self.event_count += len(events)

    def close(self) -> tuple[list[str], int]:
        """Close the open file, mark the run closed in the manifest; (file paths, events written)."""
        self._close_file()
        self.manifest = self.manifest.model_copy(update={"state": "closed", "event_count": self.event_count})
        write_manifest(self.run_dir, self.manifest)
        return self.paths, self.event_count
