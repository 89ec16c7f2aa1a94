"""The run event: one validated model for the Kafka messages that say a run started or stopped.

Two wire forms are understood, so the system runs unchanged against the real facility:

* this project's own messages (``format="lclstream"``), keyed by experiment::

    {"type": "run_start", "instrument": "MFX", "experiment": "mfxp1001121", "run": 12,
     "time": "2026-11-30T01:02:03+00:00", "run_dir": "/data/mfxp1001121/r0012",
     "detectors": ["jungfrau4M"], "params": {}}
    {"type": "run_stop", ..., "event_count": 3600, "files": ["/data/.../r0012-s000.h5", ...]}

* LCLS's eLog messages as published on its ``runs`` topic (``format="elog"``)::

    {"experiment_name": "mfxp1001121", "CRUD": "Create" | "Update", "value": RUN_DOC}

  where RUN_DOC has ``num``, ``type``, ``begin_time``, ``end_time`` (ISO datetimes, ``end_time``
  null while the run is open), ``params``, and at the end ``duration`` and ``file_catalog``.
  A ``Create`` is a run start; an ``Update`` whose run_doc has ``end_time`` set is a run stop; any
  other ``Update`` (a changed run parameter, say) is not a run event: :func:`parse_run_event`
  returns ``None`` for it.

Bad messages raise :class:`RunEventError` naming the field; consumers log and skip them. The
idempotency key of a run is ``experiment/run`` (:attr:`RunEvent.key`): a run event delivered twice
starts one transfer.

    event = parse_run_event(message.value)     # RunEvent | None; RunEventError when malformed
    if event and RunEventFilter(kinds=["run_start"], instrument="MFX").matches(event):
        start_transfer(event.key, event.run_dir)
    producer.send(topic, key=event.kafka_key(), value=event.to_json(format="elog"))
"""

from __future__ import annotations

import fnmatch
import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
WireFormat = Literal["lclstream", "elog"]
WIRE_FORMATS: tuple[WireFormat, ...] = ("lclstream", "elog")


class RunEventKind(StrEnum):
    RUN_START = "run_start"
    RUN_STOP = "run_stop"


class RunEventError(ValueError):
    """A message that claims to be a run event but is not a valid one; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class RunEvent(BaseModel):
    """A run started or stopped at the facility."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: RunEventKind = Field(description="run_start or run_stop")
    instrument: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="instrument (hutch), e.g. MFX")
    experiment: str = Field(pattern=NAME_PATTERN, description="experiment name, e.g. mfxp1001121")
    run: int = Field(ge=0, le=10**9, description="run number within the experiment")
    time: AwareDatetime = Field(description="when the run started (run_start) or stopped (run_stop)")
    run_dir: str | None = Field(None, max_length=4096,
                                description="folder the DAQ writes the run's files to, when the message says")
    detectors: list[str] = Field(default_factory=list, max_length=256, description="detectors recorded")
    params: dict[str, Any] = Field(default_factory=dict, description="run parameters, as published")
    event_count: int | None = Field(None, ge=0, description="run_stop: events the run recorded")
    files: list[str] = Field(default_factory=list, description="run_stop: the run's files")
    begin_time: AwareDatetime | None = Field(None, description="run_stop: when the run started")
    source_format: WireFormat = Field("lclstream", description="wire form the event was read from")

    @field_validator("time", "begin_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    @property
    def key(self) -> str:
        """The idempotency key of the run: ``experiment/run``."""
        return f"{self.experiment}/{self.run}"

    def kafka_key(self) -> bytes:
        """Messages are keyed by experiment, so one experiment's events stay in order on one partition."""
        return self.experiment.encode()

    def to_message(self, format: WireFormat = "lclstream") -> dict[str, Any]:  # noqa: A002 - the CLI's word
        """The message in one of the two wire forms (``parse_run_event`` reads both back)."""
        if format == "lclstream":
            return self.model_dump(mode="json", exclude={"source_format"}, exclude_none=True)
        if format != "elog":
            raise ValueError(f"format must be one of {WIRE_FORMATS}, got {format!r}")
        start = self.begin_time if self.type == RunEventKind.RUN_STOP else self.time
        doc: dict[str, Any] = {
            "num": self.run, "type": "DATA", "instrument": self.instrument,
            "begin_time": (start or self.time).isoformat(), "end_time": None,
            "params": dict(self.params)}
        if self.detectors:
            doc["detectors"] = list(self.detectors)
        if self.run_dir:
            doc["run_dir"] = self.run_dir
        if self.type == RunEventKind.RUN_STOP:
            doc["end_time"] = self.time.isoformat()
            if start is not None:
                doc["duration"] = max((self.time - start).total_seconds(), 0.0)
            doc["file_catalog"] = [{"path": f} for f in self.files]
            if self.event_count is not None:
                doc["num_events"] = self.event_count
        return {"experiment_name": self.experiment, "CRUD": "Update" if self.type == RunEventKind.RUN_STOP
                else "Create", "value": doc}

    def to_json(self, format: WireFormat = "lclstream") -> bytes:  # noqa: A002
        return json.dumps(self.to_message(format), separators=(",", ":")).encode()


class RunEventFilter(BaseModel):
    """Which run events a consumer wants: kinds, an instrument, an experiment glob (``mfx*``), a run number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: list[RunEventKind] = Field(default_factory=lambda: list(RunEventKind), min_length=1)
    instrument: str | None = Field(None, description="only this instrument (case-insensitive)")
    experiment: str | None = Field(None, description="fnmatch pattern on the experiment name")
    run: int | None = Field(None, ge=0, strict=True, description="only this run number")

    def matches(self, event: RunEvent) -> bool:
        if event.type not in self.kinds or (self.run is not None and event.run != self.run):
            return False
        if self.instrument and event.instrument.lower() != self.instrument.lower():
            return False
        return not self.experiment or fnmatch.fnmatchcase(event.experiment, self.experiment)


def _field_error(exc: ValidationError, prefix: str = "", rename: dict[str, str] | None = None) -> RunEventError:
    err = exc.errors()[0]
    parts = [str(p) for p in err["loc"]]
    if parts and rename and parts[0] in rename:
        parts[0] = rename[parts[0]]
    path = ".".join([prefix, *parts] if prefix else parts) or "(message)"
    msg = "required field is missing" if err["type"] == "missing" else err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field (not allowed)"
    return RunEventError(path, msg)


class _ElogRunDoc(BaseModel):
    """The part of an LCLS eLog run document this project reads (other keys are kept out)."""

    model_config = ConfigDict(extra="ignore")

    num: int = Field(ge=0, le=10**9)
    type: str | None = None
    begin_time: AwareDatetime
    end_time: AwareDatetime | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    duration: float | None = None
    file_catalog: list[Any] = Field(default_factory=list)
    instrument: str | None = None
    detectors: list[str] | None = None
    run_dir: str | None = None
    num_events: int | None = Field(None, ge=0)


def _elog_files(catalog: list[Any]) -> list[str]:
    files = []
    for entry in catalog:
        if isinstance(entry, str):
            files.append(entry)
        elif isinstance(entry, dict):
            path = entry.get("path") or entry.get("file") or entry.get("name")
            if isinstance(path, str):
                files.append(path)
    return files


def _from_elog(message: dict[str, Any]) -> RunEvent | None:
    crud = message.get("CRUD")
    if crud not in ("Create", "Update", "Delete"):
        raise RunEventError("CRUD", f"must be 'Create' or 'Update', got {crud!r}")
    experiment = message.get("experiment_name")
    if not isinstance(experiment, str) or not experiment:
        raise RunEventError("experiment_name", "required, a non-empty string")
    if not re.match(NAME_PATTERN, experiment):
        raise RunEventError("experiment_name", f"String should match pattern '{NAME_PATTERN}'")
    value = message.get("value")
    if not isinstance(value, dict):
        raise RunEventError("value", "required, the run document (a JSON object)")
    if crud == "Delete":
        return None
    try:
        doc = _ElogRunDoc.model_validate(value)
    except ValidationError as exc:
        raise _field_error(exc, "value") from None
    if crud == "Update" and doc.end_time is None:
        return None  # a changed run parameter, not the end of the run
    detectors = doc.detectors if doc.detectors is not None else doc.params.get("detectors", [])
    data: dict[str, Any] = {
        "instrument": doc.instrument or experiment[:3].upper(), "experiment": experiment, "run": doc.num,
        "run_dir": doc.run_dir, "detectors": detectors if isinstance(detectors, list) else [],
        "params": doc.params, "source_format": "elog"}
    if crud == "Create":
        data |= {"type": RunEventKind.RUN_START, "time": doc.begin_time}
    else:
        data |= {"type": RunEventKind.RUN_STOP, "time": doc.end_time, "begin_time": doc.begin_time,
                 "files": _elog_files(doc.file_catalog), "event_count": doc.num_events}
    try:
        return RunEvent.model_validate(data)
    except ValidationError as exc:
        raise _field_error(exc, rename={"experiment": "experiment_name", "run": "value.num",
                                        "instrument": "value.instrument"}) from None


def parse_run_event(raw: bytes | bytearray | str | dict[str, Any] | None) -> RunEvent | None:
    """The run event a Kafka message value carries; ``None`` when it is valid but not a run event.

    Raises :class:`RunEventError` (one specific message naming the field) for anything else:
    an empty value (tombstone), not JSON, not an object, an unknown ``type``, missing or mistyped fields.
    """
    if raw is None or (isinstance(raw, bytes | bytearray | str) and len(raw) == 0):
        raise RunEventError("", "empty message (a tombstone), not a run event")
    if isinstance(raw, dict):
        message: Any = raw
    else:
        try:
            message = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunEventError("", f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise RunEventError("", f"expected a JSON object, got {type(message).__name__}")
    if "CRUD" in message or "experiment_name" in message:
        return _from_elog(message)
    kind = message.get("type")
    if kind not in tuple(RunEventKind):
        raise RunEventError("type", f"must be one of {[k.value for k in RunEventKind]}, got {kind!r}")
    if "source_format" in message:
        raise RunEventError("source_format", "unknown field (not allowed)")
    try:
        return RunEvent.model_validate(message)
    except ValidationError as exc:
        raise _field_error(exc) from None


def run_event_schema() -> dict[str, Any]:
    """JSON Schema of this project's own run_start / run_stop messages, for other producers."""
    schema = RunEvent.model_json_schema(mode="serialization")
    schema["properties"].pop("source_format", None)
    schema["title"] = "LCLStream run event"
    schema["description"] = ("A run started (type=run_start) or stopped (type=run_stop); Kafka key: the "
                             "experiment name. run_stop adds event_count and files.")
    return schema
