"""The run-event model: both wire forms read back to the same event; bad messages name their field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from elog.events import (
    RunEvent,
    RunEventError,
    RunEventFilter,
    RunEventKind,
    parse_run_event,
    run_event_schema,
)

T0 = datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC)


def start_event(**extra: object) -> RunEvent:
    return RunEvent.model_validate({"type": "run_start", "instrument": "MFX", "experiment": "mfxp1001121",
                                    "run": 12, "time": T0, "run_dir": "/data/mfxp1001121/r0012",
                                    "detectors": ["jungfrau4M"], "params": {"rate": 120}} | extra)


def stop_event() -> RunEvent:
    return start_event(type="run_stop", time=T0 + timedelta(seconds=30), begin_time=T0, event_count=3600,
                       files=["/data/mfxp1001121/r0012/r0012-s000.h5"])


@pytest.mark.parametrize("event", [start_event(), stop_event()], ids=["start", "stop"])
def test_own_form_round_trips(event: RunEvent) -> None:
    assert parse_run_event(event.to_json()) == event
    assert event.key == "mfxp1001121/12"
    assert event.kafka_key() == b"mfxp1001121"


@pytest.mark.parametrize("event", [start_event(), stop_event()], ids=["start", "stop"])
def test_elog_form_round_trips(event: RunEvent) -> None:
    message = event.to_message("elog")
    assert message["CRUD"] == ("Create" if event.type == RunEventKind.RUN_START else "Update")
    assert parse_run_event(json.dumps(message)) == event.model_copy(update={"source_format": "elog"})


def test_elog_message_as_lcls_publishes_it() -> None:
    create = {"experiment_name": "cxil1022422", "CRUD": "Create",
              "value": {"num": 7, "type": "DATA", "begin_time": "2026-11-30T01:02:03.5-08:00", "end_time": None,
                        "params": {"Detectors": "epix"}, "run_id": "abc", "editable_params": {}}}
    event = parse_run_event(json.dumps(create).encode())
    assert event is not None and event.type == RunEventKind.RUN_START
    assert (event.instrument, event.experiment, event.run) == ("CXI", "cxil1022422", 7)
    assert event.time == datetime(2026, 11, 30, 9, 2, 3, 500000, tzinfo=UTC)
    param_update = dict(create, CRUD="Update", value=create["value"] | {"params": {"x": 1}})
    assert parse_run_event(json.dumps(param_update)) is None
    end = dict(create, CRUD="Update", value=create["value"] | {
        "end_time": "2026-11-30T01:03:03-08:00", "duration": 59.5,
        "file_catalog": [{"path": "/xtc/cxil1022422-r0007-s000-c000.xtc2"}, "/xtc/b.xtc2"]})
    stop = parse_run_event(json.dumps(end))
    assert stop is not None and stop.type == RunEventKind.RUN_STOP
    assert stop.files == ["/xtc/cxil1022422-r0007-s000-c000.xtc2", "/xtc/b.xtc2"]
    assert stop.begin_time == event.time


@pytest.mark.parametrize(("raw", "field", "words"), [
    (b"", "", "tombstone"),
    (None, "", "tombstone"),
    (b"\xff\xfe", "", "not JSON"),
    (b"not json", "", "not JSON"),
    (b"[1, 2]", "", "JSON object"),
    (b'{"type": "run_begin"}', "type", "run_start"),
    (b'{"type": "run_start", "instrument": "MFX", "experiment": "e1", "time": "2026-01-01T00:00:00Z"}',
     "run", "missing"),
    (b'{"type": "run_start", "instrument": "MFX", "experiment": "e1", "run": "twelve", '
     b'"time": "2026-01-01T00:00:00Z"}', "run", "integer"),
    (b'{"type": "run_start", "instrument": "MFX", "experiment": "e1", "run": 1, "time": "2026-01-01T00:00:00"}',
     "time", "timezone"),
    (b'{"type": "run_start", "instrument": "MFX", "experiment": "e1", "run": 1, "time": "2026-01-01T00:00:00Z",'
     b' "colour": "red"}', "colour", "unknown field"),
    (b'{"CRUD": "Create", "experiment_name": "e1"}', "value", "run document"),
    (b'{"CRUD": "Upsert", "experiment_name": "e1", "value": {}}', "CRUD", "Create"),
    (b'{"CRUD": "Create", "value": {"num": 1}}', "experiment_name", "required"),
    (b'{"CRUD": "Create", "experiment_name": "e1", "value": {"num": 1}}', "value.begin_time", "missing"),
    (b'{"CRUD": "Create", "experiment_name": "e 1", "value": {"num": 1, "begin_time": "2026-01-01T00:00:00Z"}}',
     "experiment_name", "pattern"),
])
def test_bad_messages_name_the_field(raw: bytes | None, field: str, words: str) -> None:
    with pytest.raises(RunEventError) as info:
        parse_run_event(raw)
    assert info.value.field == field
    assert words.lower() in str(info.value).lower()


def test_filter() -> None:
    start, stop = start_event(), stop_event()
    assert RunEventFilter().matches(start) and RunEventFilter().matches(stop)
    only_stops = RunEventFilter(kinds=[RunEventKind.RUN_STOP])
    assert not only_stops.matches(start) and only_stops.matches(stop)
    assert RunEventFilter(instrument="mfx").matches(start)
    assert not RunEventFilter(instrument="CXI").matches(start)
    assert RunEventFilter(experiment="mfxp*").matches(start)
    assert not RunEventFilter(experiment="cxi*").matches(start)


def test_schema_describes_own_messages() -> None:
    schema = run_event_schema()
    assert schema["additionalProperties"] is False
    assert {"type", "instrument", "experiment", "run", "time"} <= set(schema["required"])
    assert "source_format" not in schema["properties"]
