"""Run records: the models the ELog service stores, serves and accepts, shared by its client and the DAQ.

A ``RunRecord`` is one run of one experiment (instrument, state ``open``/``closed``, start and stop time,
parameters, detectors, run directory, files, event count) with its annotations (time, author, text and
a JSON body such as a transfer summary). ``RunOpen`` and ``RunClose`` are what a DAQ sends to open and
close a run; ``AnnotationIn`` is what anyone sends to annotate one (the author is the caller's identity,
never a field of the body). A record turns into the shared run event (``elog.events.RunEvent``) with
``start_event()`` / ``stop_event()``, so the records and the Kafka messages cannot disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from elog.events import NAME_PATTERN, RunEvent, RunEventKind

INSTRUMENT_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
MAX_RUN = 10**9
UtcTime = Annotated[AwareDatetime, AfterValidator(lambda value: value.astimezone(UTC))]


def utc_now() -> datetime:
    return datetime.now(UTC)


class RunState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class AnnotationIn(BaseModel):
    """A note on a run: text for people, and a JSON object for programs (e.g. a transfer summary)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20_000, description="what a person reads")
    body: dict[str, Any] | None = Field(None, description="a JSON object, e.g. a transfer summary")


class Annotation(AnnotationIn):
    id: int = Field(ge=1, description="the annotation's number, unique in the service")
    time: UtcTime
    author: str = Field(description="the identity that wrote it (its certificate name)")


class RunOpen(BaseModel):
    """Open a run. Without ``run`` the service takes the experiment's next number; ``run_dir`` names the
    run's directory, or ``data_root`` lets the service name it ``DATA_ROOT/EXPERIMENT/rNNNN``."""

    model_config = ConfigDict(extra="forbid")

    instrument: str = Field(pattern=INSTRUMENT_PATTERN, description="instrument (hutch), e.g. MFX")
    experiment: str = Field(pattern=NAME_PATTERN, description="experiment name, e.g. mfxp1001121")
    run: int | None = Field(None, ge=0, le=MAX_RUN, description="run number; default: the next one")
    detectors: list[str] = Field(default_factory=list, max_length=256)
    params: dict[str, Any] = Field(default_factory=dict, description="run parameters")
    run_dir: str | None = Field(None, min_length=1, max_length=4096)
    data_root: str | None = Field(None, min_length=1, max_length=4000)
    start_time: AwareDatetime | None = Field(None, description="default: now")

    @model_validator(mode="after")
    def _one_place(self) -> RunOpen:
        if self.run_dir is not None and self.data_root is not None:
            raise ValueError("give run_dir or data_root, not both")
        return self


class RunClose(BaseModel):
    """Close a run with what it recorded."""

    model_config = ConfigDict(extra="forbid")

    event_count: int = Field(ge=0, description="events the run recorded")
    files: list[str] = Field(default_factory=list, max_length=100_000, description="the run's files")
    stop_time: AwareDatetime | None = Field(None, description="default: now")


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instrument: str
    experiment: str
    run: int
    state: RunState
    start_time: UtcTime
    stop_time: UtcTime | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    detectors: list[str] = Field(default_factory=list)
    run_dir: str | None = None
    files: list[str] = Field(default_factory=list)
    event_count: int | None = None
    opened_by: str = Field(description="the identity that opened the run")
    annotations: list[Annotation] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.experiment}/{self.run}"

    def start_event(self) -> RunEvent:
        return RunEvent(type=RunEventKind.RUN_START, instrument=self.instrument, experiment=self.experiment,
                        run=self.run, time=self.start_time, run_dir=self.run_dir, detectors=self.detectors,
                        params=self.params)

    def stop_event(self) -> RunEvent:
        if self.state != RunState.CLOSED or self.stop_time is None:
            raise ValueError(f"run {self.key} is not closed")
        return RunEvent(type=RunEventKind.RUN_STOP, instrument=self.instrument, experiment=self.experiment,
                        run=self.run, time=self.stop_time, run_dir=self.run_dir, detectors=self.detectors,
                        params=self.params, event_count=self.event_count, files=self.files,
                        begin_time=self.start_time)

    def summary(self) -> str:
        """One line for a person."""
        when = self.start_time.strftime("%Y-%m-%d %H:%M:%S")
        if self.state == RunState.OPEN:
            state = "open"
        else:
            seconds = (self.stop_time - self.start_time).total_seconds() if self.stop_time else 0.0
            state = f"closed after {seconds:.1f} s, {self.event_count} events in {len(self.files)} files"
        notes = f", {len(self.annotations)} annotations" if self.annotations else ""
        return f"{self.experiment}/{self.run} {self.instrument} started {when} UTC, {state}{notes}"


class RunList(BaseModel):
    runs: list[RunRecord]
