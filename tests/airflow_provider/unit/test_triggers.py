"""Triggers are tiny and serializable: every kwarg JSON-friendly, ``serialize()`` round-trips, the class
path imports, bad filters fail when the trigger is made (at DAG parse time)."""

from __future__ import annotations

import importlib
import json

import pytest
from airflow.triggers.base import BaseEventTrigger

from airflow_provider_lclstream.triggers.psik_job import PsikJobTrigger
from airflow_provider_lclstream.triggers.run_events import RunEventTrigger
from airflow_provider_lclstream.triggers.transfer import TransferTrigger

CASES = [
    (RunEventTrigger, {"kafka_conn_id": "kafka_mfx", "kinds": ["run_start"], "instrument": "MFX",
                       "experiment": "mfx*", "run": None, "topic": "runs", "group_id": "g", "since": None}),
    (RunEventTrigger, {"kafka_conn_id": "k", "kinds": ["run_stop"], "instrument": None, "experiment": "mfxp1001121",
                       "run": 12, "topic": None, "group_id": None, "since": "2026-11-30T01:00:00+00:00"}),
    (TransferTrigger, {"transfer_id": "abc123", "condition": {"state": "completed"}, "lclstream_conn_id": "ls",
                       "poll_interval": 0.5, "cancel_on_kill": True}),
    (TransferTrigger, {"transfer_id": "abc123", "condition": {"consumers": 2, "messages": 10},
                       "lclstream_conn_id": "ls", "poll_interval": 2.0, "cancel_on_kill": False}),
    (PsikJobTrigger, {"jobid": "20261130T010203-abcdef", "psik_conn_id": "p", "poll_interval": 1.0,
                      "stream_logs": False, "cancel_on_kill": True}),
]


@pytest.mark.parametrize(("cls", "kwargs"), CASES)
def test_serialize_round_trips_with_json_kwargs(cls: type, kwargs: dict[str, object]) -> None:
    classpath, serialized = cls(**kwargs).serialize()
    assert serialized == kwargs
    assert json.loads(json.dumps(serialized)) == serialized
    module, name = classpath.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**serialized)
    assert type(again) is cls and again.serialize() == (classpath, kwargs)


def test_run_event_trigger_is_an_event_trigger_sharing_one_stream_per_group() -> None:
    a = RunEventTrigger(kafka_conn_id="k", kinds=["run_start"], instrument="MFX")
    b = RunEventTrigger(kafka_conn_id="k", kinds=["run_stop"], instrument="CXI", experiment="cxi*")
    other_group = RunEventTrigger(kafka_conn_id="k", group_id="elsewhere")
    assert isinstance(a, BaseEventTrigger)
    assert a.shared_stream_key() == b.shared_stream_key() != other_group.shared_stream_key()
    since = RunEventTrigger(kafka_conn_id="k", since="2026-11-30T00:00:00+00:00")
    assert since.shared_stream_key() is None  # a private read from a time, no group
    assert BaseEventTrigger.hash(*a.serialize()) != BaseEventTrigger.hash(*b.serialize())


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"kinds": ["run_pause"]}, "kinds.0"),
    ({"kinds": []}, "kinds"),
    ({"run": -1}, "run:"),
    ({"since": "yesterday"}, "since:"),
    ({"since": "2026-11-30T00:00:00"}, "time zone"),
])
def test_bad_run_event_filters_fail_at_once(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        RunEventTrigger(**kwargs)  # type: ignore[arg-type]


def test_bad_transfer_condition_fails_at_once() -> None:
    with pytest.raises(ValueError, match="at least one"):
        TransferTrigger(transfer_id="x", condition={})
    with pytest.raises(ValueError, match="consumers"):
        TransferTrigger(transfer_id="x", condition={"consumers": 0})


def test_usable_behind_an_asset_watcher() -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Asset, AssetWatcher
    from airflow.serialization.serialized_objects import DagSerialization

    trigger = RunEventTrigger(kafka_conn_id="kafka_mfx", kinds=["run_start"], instrument="MFX")
    runs = Asset("mfx_runs", watchers=[AssetWatcher(name="mfx_run_starts", trigger=trigger)])
    with DAG("on_run_start", schedule=[runs]) as dag:
        EmptyOperator(task_id="start")
    serialized = json.dumps(DagSerialization.serialize_dag(dag))
    assert "airflow_provider_lclstream.triggers.run_events.RunEventTrigger" in serialized
    assert "kafka_mfx" in serialized
