"""Which run a task works for: its argument, else the run event that triggered the DAG run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

from airflow_provider_lclstream import run_events
from airflow_provider_lclstream.run_event_context import RunEventArgumentError, context_run_event
from airflow_provider_lclstream.triggers.run_events import event_payload
from elog.events import RunEvent

NOW = datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC)


def run_event(run: int, kind: str = "run_start") -> RunEvent:
    return RunEvent(type=kind, instrument="MFX", experiment="mfxp1001121", run=run, time=NOW,  # type: ignore[arg-type]
                    detectors=["jungfrau4M"], run_dir=f"/data/r{run:04d}")


def context_with(*events: RunEvent) -> dict[str, Any]:
    refs = [AssetEventDagRunReferenceResult.model_validate({
        "asset": {"name": "mfx_runs", "uri": "mfx_runs", "extra": {}},
        "extra": {"from_trigger": True, "payload": event_payload(e)}, "source_task_id": None,
        "source_dag_id": None, "source_run_id": None, "source_map_index": None, "source_aliases": [],
        "timestamp": NOW}) for e in events]
    return {"triggering_asset_events": TriggeringAssetEventsAccessor.build(refs)}


def test_the_triggering_run_event_is_found() -> None:
    context = context_with(run_event(12))
    assert [e["key"] for e in run_events(context)] == ["mfxp1001121/12"]
    found = context_run_event(context)
    assert found is not None and found.key == "mfxp1001121/12" and found.run_dir == "/data/r0012"


def test_an_explicit_run_event_wins_and_may_be_json() -> None:
    context = context_with(run_event(12))
    assert context_run_event(context, event_payload(run_event(13))).run == 13  # type: ignore[union-attr]
    assert context_run_event({}, run_event(14).model_dump_json()).run == 14  # type: ignore[union-attr]
    assert context_run_event({}) is None and context_run_event({}, "None") is None


def test_several_runs_at_once_must_be_told_apart() -> None:
    context = context_with(run_event(12), run_event(13), run_event(12))  # a re-delivery counts once
    assert len(run_events(context)) == 2
    with pytest.raises(RunEventArgumentError, match="2 run events triggered this DAG run"):
        context_run_event(context)


def test_a_bad_run_event_names_its_field() -> None:
    with pytest.raises(RunEventArgumentError, match="run_event.run"):
        context_run_event({}, {**event_payload(run_event(1)), "run": "twelve"})


def test_templates_see_the_run_event() -> None:
    from airflow.sdk import DAG

    from airflow_provider_lclstream.operators.psik import PsikJobOperator

    script = "pull --out /scratch/{{ run_event.experiment }}/r{{ run_event.run }} # {{ run_event.key }}"
    with DAG("render_run_event", schedule=None, start_date=NOW):
        job = PsikJobOperator(task_id="job", spec={"script": script})
        ambiguous = PsikJobOperator(task_id="ambiguous", spec={"script": script})
        plain = PsikJobOperator(task_id="plain", spec={"script": "hostname"})
    job.render_template_fields(context_with(run_event(12)))
    assert job.spec["script"] == "pull --out /scratch/mfxp1001121/r12 # mfxp1001121/12"
    plain.render_template_fields(context_with(run_event(12), run_event(13)))  # no run_event used: no problem
    with pytest.raises(Exception, match="2 run events triggered this DAG run"):
        ambiguous.render_template_fields(context_with(run_event(12), run_event(13)))
