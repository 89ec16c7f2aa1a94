"""``HDF5EventSource``: replay recorded events from HDF5/CXI files (event = index along the first axis).

Each ``HDF5Dataset`` data source names a dataset path that every file holds; files are concatenated in the
order given (glob patterns expand in sorted order). Data are read a chunk of events at a time.
"""

from __future__ import annotations

import bisect
import glob
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import h5py
import hdf5plugin  # noqa: F401  (registers the compression filters recorded files may use)
from pydantic import Field

from streamer.base import ComponentConfig, Event, EventSource, RunContext
from streamer.registry import Component, register
from streamer.sources.errors import SourceError
from streamer.sources.indexed import INDEX_DERIVED_TYPES, build_indexed_sources


class HDF5DatasetConfig(ComponentConfig):
    """One dataset of the input files; event ``i`` of a file is ``dataset[i]``."""

    type: Literal["HDF5Dataset"]
    dataset: str = Field(min_length=1, description="path of the dataset inside each file, e.g. /entry/data/data")


class HDF5EventSourceConfig(ComponentConfig):
    """Events read from existing HDF5 or CXI files."""

    supported_data_sources: ClassVar[frozenset[str] | None] = INDEX_DERIVED_TYPES | {"HDF5Dataset"}

    type: Literal["HDF5EventSource"]
    files: list[str] = Field(min_length=1, description="file paths or glob patterns, read in this order")
    read_chunk: int = Field(16, ge=1, le=4096, description="events read from a dataset per call")


def expand_files(patterns: list[str]) -> list[Path]:
    """Expand glob patterns (sorted) and check every file exists, naming the first one that does not."""
    paths: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise SourceError(f"input file pattern {pattern!r} matches no file")
            paths.extend(Path(m) for m in matches)
        else:
            path = Path(pattern)
            if not path.is_file():
                raise SourceError(f"input file {pattern} does not exist")
            paths.append(path)
    return paths


class HDF5EventSource(EventSource):
    config: HDF5EventSourceConfig

    def __init__(self, config: ComponentConfig, data_sources: dict[str, ComponentConfig],
                 context: RunContext) -> None:
        super().__init__(config, data_sources, context)
        self.indexed = build_indexed_sources(data_sources, context)
        self.datasets = {name: cfg.dataset for name, cfg in data_sources.items()  # type: ignore[attr-defined]
                         if cfg.type == "HDF5Dataset"}  # type: ignore[attr-defined]
        self.files: list[h5py.File] = []
        self.starts: list[int] = []  # global index of each file's first event
        self.total: int | None = None

    def _open(self) -> None:
        if self.total is not None:
            return
        total = 0
        for path in expand_files(self.config.files):
            try:
                handle = h5py.File(path, "r")
            except OSError as exc:
                raise SourceError(f"input file {path} is not a readable HDF5 file: {exc}") from exc
            self.files.append(handle)
            self.starts.append(total)
            total += self._file_length(path, handle)
        self.total = total

    def _file_length(self, path: Path, handle: h5py.File) -> int:
        lengths: dict[str, int] = {}
        for name, dataset in self.datasets.items():
            obj = handle.get(dataset)
            if not isinstance(obj, h5py.Dataset):
                raise SourceError(f"input file {path} has no dataset {dataset!r} (data source {name!r})")
            if obj.ndim == 0:
                raise SourceError(f"dataset {dataset!r} in {path} is a scalar; events need a first axis")
            lengths[dataset] = obj.shape[0]
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{d}: {n}" for d, n in lengths.items())
            raise SourceError(f"datasets in {path} disagree on the number of events ({listed})")
        return next(iter(lengths.values()), 0)

    def number_of_events(self) -> int:
        self._open()
        assert self.total is not None
        return self.total

    def _locate(self, index: int) -> tuple[int, int]:
        file_no = bisect.bisect_right(self.starts, index) - 1  # the last file starting at or before index
        return file_no, index - self.starts[file_no]

    def events(self, indices: range) -> Iterator[Event]:
        self._open()
        assert self.total is not None
        chunk = self.config.read_chunk
        cache_key: tuple[int, int] | None = None
        cache: dict[str, object] = {}
        for index in indices:
            if not 0 <= index < self.total:
                raise IndexError(f"event {index} is outside the {self.total} events of the input files")
            file_no, local = self._locate(index)
            key = (file_no, local // chunk)
            if key != cache_key:
                handle = self.files[file_no]
                lo = key[1] * chunk
                cache = {name: handle[path][lo:lo + chunk] for name, path in self.datasets.items()}
                cache_key = key
            offset = local % chunk
            event: Event = {name: block[offset] for name, block in cache.items()}  # type: ignore[index]
            for name, source in self.indexed.items():
                event[name] = source.extract(index)
            yield {name: event[name] for name in self.data_sources}

    def close(self) -> None:
        for handle in self.files:
            handle.close()
        self.files.clear()


register("data_sources", Component(HDF5DatasetConfig, None))
register("event_sources", Component(HDF5EventSourceConfig, HDF5EventSource))
