"""``LiveRunEventSource``: read a run while the DAQ writes it, and end once the run is closed and read.

The run directory's ``run.json`` manifest (``streamer.run_dir``) lists the run's SWMR HDF5 files
and says whether the run is still open. While it is open the total is unknown, so ``number_of_events``
returns None and the runner gives rank ``r`` of ``N`` the events ``r, r+N, r+2N, ...``; for each one the
source waits until it is written (polling the manifest for new files and refreshing the growing file's
datasets every ``poll_interval``), and stops when the run is closed and that index is past its end.
A run that is already closed has a known total and is read like a recorded run, so one config serves a
live run and a past one. Data sources are ``HDF5Dataset`` (paths in the run's files, as listed in the
manifest's ``datasets``) and the index-derived ones, so the same serializer ``fields`` work as for
``HDF5EventSource``.

    event_source: {type: LiveRunEventSource, run_dir: /data/mfxp1001121/r0012, idle_timeout: 60}
    data_sources:
      jungfrau: {type: HDF5Dataset, dataset: /data/jungfrau4M}
      pulse_id: {type: HDF5Dataset, dataset: /LCLS/pulse_id}

No new event for ``idle_timeout`` seconds while the run is open raises ``LiveRunTimeout`` (the stream
fails with that message instead of hanging); a missing run directory or manifest is one ``SourceError``.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import h5py
import hdf5plugin  # noqa: F401  (registers the compression filters the DAQ's files use)
import numpy as np
from pydantic import Field

from streamer.base import ComponentConfig, Event, EventSource, RunContext
from streamer.registry import Component, register
from streamer.run_dir import UNWRITTEN, ManifestError, RunManifest, read_manifest
from streamer.sources.errors import SourceError, SourceTimeout
from streamer.sources.indexed import INDEX_DERIVED_TYPES, build_indexed_sources

log = logging.getLogger(__name__)


class LiveRunTimeout(SourceTimeout):
    """The run is open but no new event came for ``idle_timeout`` seconds."""


class LiveRunEventSourceConfig(ComponentConfig):
    """Events of a run read while it is written (SWMR HDF5 files plus a run.json manifest)."""

    supported_data_sources: ClassVar[frozenset[str] | None] = INDEX_DERIVED_TYPES | {"HDF5Dataset"}

    type: Literal["LiveRunEventSource"]
    run_dir: str = Field(min_length=1, description="the run's directory, as the run_start event gives it")
    idle_timeout: float = Field(60.0, gt=0, le=7 * 86400,
                                description="fail when the run is open but no new event came for this long (s)")
    poll_interval: float = Field(0.02, gt=0, le=10, description="seconds between looks for new events")


class _RunFile:
    """One of the run's files, open for SWMR reading: how many of its events are written."""

    def __init__(self, path: Path, start: int, datasets: dict[str, str], commit: str) -> None:
        try:
            self.handle = h5py.File(path, "r", swmr=True)
        except OSError as exc:
            raise SourceError(f"run file {path} is not a readable HDF5 file: {exc}") from None
        self.path = path
        self.start = start
        self.final: int | None = None
        self.available = 0
        self.datasets: dict[str, h5py.Dataset] = {}
        for name, dataset in {**datasets, "(commit)": commit}.items():
            obj = self.handle.get(dataset)
            if not isinstance(obj, h5py.Dataset):
                self.handle.close()
                raise SourceError(f"run file {path} has no dataset {dataset!r} (data source {name!r})")
            self.datasets[name] = obj
        self.commit = self.datasets.pop("(commit)")

    def refresh(self, final: int | None) -> bool:
        """Look at the file again (``final``: its event count once the writer closed it); True if it grew."""
        if self.final is not None:
            return False
        self.commit.refresh()
        length = self.commit.shape[0]
        for dataset in self.datasets.values():
            dataset.refresh()
            length = min(length, dataset.shape[0])
        if final is not None:
            length = min(length, final)
        if length > self.available:  # trust an event once its pulse id (written last) is set
            written = np.asarray(self.commit[self.available:length]) != UNWRITTEN
            length = self.available + (int(np.argmin(written)) if not written.all() else len(written))
        grew = length > self.available
        self.available = length
        if final is not None and length >= final:
            self.final = final
        return grew

    def read(self, local: int) -> dict[str, Any]:
        return {name: dataset[local] for name, dataset in self.datasets.items()}

    def close(self) -> None:
        self.handle.close()


class LiveRunEventSource(EventSource):
    config: LiveRunEventSourceConfig

    def __init__(self, config: ComponentConfig, data_sources: dict[str, ComponentConfig],
                 context: RunContext) -> None:
        super().__init__(config, data_sources, context)
        self.run_dir = Path(self.config.run_dir)
        self.indexed = build_indexed_sources(data_sources, context)
        self.wanted = {name: cfg.dataset for name, cfg in data_sources.items()  # type: ignore[attr-defined]
                       if cfg.type == "HDF5Dataset"}  # type: ignore[attr-defined]
        self.manifest: RunManifest | None = None
        self.files: list[_RunFile] = []
        self.starts: list[int] = []
        self.last_progress = time.monotonic()

    # -- the run's state -------------------------------------------------------------------------------
    def _read_manifest(self) -> RunManifest:
        """The manifest as it is now: a small file, read on every look (a replaced file's inode number and
        coarse mtime can repeat, so they cannot tell whether it changed)."""
        try:
            manifest = read_manifest(self.run_dir)
        except ManifestError as exc:
            raise SourceError(str(exc)) from None
        known = set(manifest.datasets.values())
        for name, dataset in self.wanted.items():
            if known and dataset not in known:  # no datasets declared: each file is checked when opened
                raise SourceError(f"data source {name!r}: dataset {dataset!r} is not in run "
                                  f"{manifest.experiment}/{manifest.run} (it has: {', '.join(sorted(known))})")
        return manifest

    def _poll(self) -> bool:
        """Re-read the manifest, open new files, refresh the growing one; True when new events came."""
        manifest = self.manifest = self._read_manifest()
        grew = False
        for number, entry in enumerate(manifest.files):
            if number == len(self.files):
                if self.files and self.files[-1].final is None:
                    break  # the previous file is not finished as far as we read it
                start = self._available()
                self.files.append(_RunFile(self.run_dir / entry.name, start, self.wanted, manifest.commit_dataset))
                self.starts.append(start)
                log.info("run %s/%d: reading %s (events from %d)", manifest.experiment, manifest.run,
                         entry.name, start)
            run_file = self.files[number]
            if run_file.final is None:
                grew |= run_file.refresh(entry.events if entry.complete else None)
        if grew:
            self.last_progress = time.monotonic()
        return grew

    def _total(self) -> int | None:
        """The run's total once it is closed and every file was seen to its end, else None."""
        manifest = self.manifest
        if manifest is None or not manifest.closed or len(self.files) < len(manifest.files):
            return None
        if any(f.final is None for f in self.files):
            return None
        return sum(f.available for f in self.files)

    def _available(self) -> int:
        return self.files[-1].start + self.files[-1].available if self.files else 0

    # -- EventSource -----------------------------------------------------------------------------------
    def number_of_events(self) -> int | None:
        if not self.run_dir.is_dir():
            raise SourceError(f"run directory {self.run_dir} does not exist")
        for source in self.indexed.values():
            source.prepare()
        self._poll()
        if self.manifest is not None and self.manifest.closed:
            for _ in range(len(self.manifest.files) + 1):  # every complete file opened and counted
                if self._total() is not None or not self._poll():
                    break
            total = self._total()
            if total is None:
                raise SourceError(f"run directory {self.run_dir}: the run is closed but its files hold fewer "
                                  f"events than run.json says")
            return total
        self.last_progress = time.monotonic()
        return None

    def _wait_for(self, index: int) -> bool:
        """Block until event ``index`` is written (True) or the run ended before it (False)."""
        cfg = self.config
        while True:
            if index < self._available():
                return True
            self._poll()
            if index < self._available():
                return True
            total = self._total()
            if total is not None and index >= total:
                return False
            idle = time.monotonic() - self.last_progress
            if idle > cfg.idle_timeout:
                manifest = self.manifest
                run = f"{manifest.experiment}/{manifest.run}" if manifest else str(self.run_dir)
                raise LiveRunTimeout(f"run {run} in {self.run_dir} is still open but no new event came for "
                                     f"{idle:.0f} s (idle_timeout {cfg.idle_timeout:g} s); "
                                     f"{self._available()} events were written")
            time.sleep(cfg.poll_interval)

    def events(self, indices: range) -> Iterator[Event]:
        for index in indices:
            if not self._wait_for(index):
                return
            number = bisect.bisect_right(self.starts, index) - 1
            run_file = self.files[number]
            event: Event = run_file.read(index - run_file.start)
            for name, source in self.indexed.items():
                event[name] = source.extract(index)
            yield {name: event[name] for name in self.data_sources}

    def close(self) -> None:
        for run_file in self.files:
            run_file.close()
        self.files.clear()
        self.starts.clear()


register("event_sources", Component(LiveRunEventSourceConfig, LiveRunEventSource))
