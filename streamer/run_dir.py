"""The layout of a run directory: what a DAQ writes while a run takes data and a live reader follows.

A run directory holds HDF5 files written with SWMR (single writer, many readers that follow the file as
it grows) and a ``run.json`` manifest that the writer replaces atomically (write, then rename) whenever
the set of files or the run's state changes. HDF5 forbids creating attributes or objects once SWMR has
started, so completeness lives in the manifest, not in the files:

* ``state``: ``open`` while the run takes data, ``closed`` once every file is closed;
* ``files``: in event order, each with ``events`` (final once ``complete``) - a file is listed only after
  its writer entered SWMR mode, so a reader may always open a listed file;
* ``event_count``: the run's total, set when it is closed.

Inside a file, event ``i`` of the file is index ``i`` of every dataset (``/data/<detector>``,
``/LCLS/pulse_id``, ``/LCLS/timestamp``). The writer extends and fills the detector datasets first and
the commit dataset (``/LCLS/pulse_id``, fill value -1) last, then flushes, so a reader trusts an event
once its pulse id is set.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST_NAME = "run.json"
DETECTOR_GROUP = "/data"
PULSE_ID_DATASET = "/LCLS/pulse_id"
TIMESTAMP_DATASET = "/LCLS/timestamp"
COMMIT_DATASET = PULSE_ID_DATASET
UNWRITTEN = -1  # fill value of the commit dataset: an event whose pulse id reads -1 is not written yet


class ManifestError(ValueError):
    """The manifest is missing or is not a valid run manifest; the message says which and why."""


class RunFileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="file name inside the run directory")
    events: int = Field(0, ge=0, description="events in the file (final once complete)")
    complete: bool = Field(False, description="the writer closed the file")


class RunManifest(BaseModel):
    """``run.json``: the run's state and files, replaced atomically by the writer."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = 1
    instrument: str
    experiment: str
    run: int = Field(ge=0)
    state: Literal["open", "closed"] = "open"
    files: list[RunFileEntry] = Field(default_factory=list)
    event_count: int | None = Field(None, ge=0, description="the run's total events, once closed")
    datasets: dict[str, str] = Field(default_factory=dict, description="name -> dataset path in every file")
    commit_dataset: str = COMMIT_DATASET

    @property
    def closed(self) -> bool:
        return self.state == "closed"


def detector_dataset(detector: str) -> str:
    return f"{DETECTOR_GROUP}/{detector}"


def run_dir_for(data_root: str | Path, experiment: str, run: int) -> Path:
    """Where a run's files go under a data root: ``DATA_ROOT/EXPERIMENT/rNNNN``."""
    return Path(data_root) / experiment / f"r{run:04d}"


def file_name(experiment: str, run: int, chunk: int) -> str:
    """The name of a run's ``chunk``-th file, e.g. ``mfxp1001121-r0012-c000.h5``."""
    return f"{experiment}-r{run:04d}-c{chunk:03d}.h5"


def manifest_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / MANIFEST_NAME


def read_manifest(run_dir: str | Path) -> RunManifest:
    path = manifest_path(run_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(f"{path} does not exist: {run_dir} is not a run directory written by a "
                            "lclstream DAQ") from None
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return RunManifest.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ManifestError(f"{path} is not a valid run manifest: {where}: {err['msg']}") from None


def write_manifest(run_dir: str | Path, manifest: RunManifest) -> None:
    """Replace ``run.json`` atomically: readers see the old or the new manifest, never a partial one."""
    directory = Path(run_dir)
    fd, tmp = tempfile.mkstemp(prefix=".run.json.", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(manifest.model_dump(mode="json"), indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / MANIFEST_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
