"""The DAG files of ``dags/`` parse with no import error, and say what the issue asks of them: assets
watched by ``RunEventTrigger`` for run_start / run_stop, one mapped task group per run, the manual DAG's
form; connection ids and the trigger's filter come from Variables (``AIRFLOW_VAR_*`` here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DAG

DAGS = Path(__file__).resolve().parents[3] / "dags"
GROUP_TASKS = ["stream.transfer", "stream.consumer", "stream.connected", "stream.drained", "stream.cancel_rest",
               "stream.outcome", "stream.annotate", "stream.verdict"]


@pytest.fixture
def dags(monkeypatch: pytest.MonkeyPatch) -> dict[str, DAG]:
    monkeypatch.setenv("AIRFLOW_VAR_LCLSTREAM_INSTRUMENT", "MFX")
    monkeypatch.setenv("AIRFLOW_VAR_LCLSTREAM_PSIK_CONN_ID", "psik_s3df")
    bag = DagBag(str(DAGS))
    assert bag.import_errors == {}
    return bag.dags  # type: ignore[return-value]


def test_the_three_dags_and_their_tasks(dags: dict[str, DAG]) -> None:
    assert set(dags) == {"lclstream_on_run_start", "lclstream_on_run_stop", "lclstream_manual"}
    for dag_id in ("lclstream_on_run_start", "lclstream_on_run_stop"):
        assert [t.task_id for t in dags[dag_id].tasks] == ["runs", *GROUP_TASKS, "report_refused", "sweep"]
    assert [t.task_id for t in dags["lclstream_manual"].tasks] == ["runs", *GROUP_TASKS]
    assert all(dag.is_paused_upon_creation is False for dag in dags.values())  # live once deployed, any config
    dag = dags["lclstream_on_run_start"]
    assert dag.task_dict["stream.consumer"].psik_conn_id == "psik_s3df"  # from the Variable
    assert dag.task_dict["stream.cancel_rest"].trigger_rule == "one_failed"
    assert dag.task_dict["stream.outcome"].trigger_rule == "all_done"
    assert dag.task_dict["stream.transfer"].get_closest_mapped_task_group() is not None
    assert {"stream.consumer", "stream.drained", "stream.cancel_rest"} <= dag.task_dict["stream.outcome"].upstream_task_ids


@pytest.mark.parametrize(("dag_id", "kind"), [("lclstream_on_run_start", "run_start"),
                                              ("lclstream_on_run_stop", "run_stop")])
def test_runs_fire_the_dags_through_an_asset_watcher(dags: dict[str, DAG], dag_id: str, kind: str) -> None:
    (asset,) = dags[dag_id].timetable.asset_condition.objects  # type: ignore[attr-defined]
    (watcher,) = asset.watchers
    name, kwargs = watcher.trigger.serialize()
    assert name == "airflow_provider_lclstream.triggers.run_events.RunEventTrigger"
    assert kwargs["kinds"] == [kind] and kwargs["instrument"] == "MFX"
    assert kwargs["kafka_conn_id"] == "lclstream_kafka_default"


def test_the_manual_form_has_titles_descriptions_enums_and_sections(dags: dict[str, DAG]) -> None:
    params = dags["lclstream_manual"].params
    schema = {name: params.get_param(name).schema for name in params}
    assert list(schema) == ["experiment", "run", "detectors", "serializer", "compression", "batch_size", "ranks",
                            "consumer_command"]
    assert {s["section"] for s in schema.values()} == {"Run", "Data", "Compute"}
    assert all(s.get("title") for s in schema.values())
    assert all(params.get_param(name).description for name in params)
    assert schema["serializer"]["enum"] == ["HDF5Serializer", "MsgpackSerializer"]
    assert "bitshuffle_lz4" in schema["compression"]["enum"]


def test_a_bad_variable_fails_the_dag_file_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_LCLSTREAM_KAFKA_CONN_ID", "")
    monkeypatch.setenv("AIRFLOW_VAR_LCLSTREAM_EXPERIMENT", "mfx*")
    monkeypatch.setenv("AIRFLOW_VAR_LCLSTREAM_INSTRUMENT", "MFX")
    bag = DagBag(str(DAGS))
    assert bag.import_errors == {}  # an empty Variable leaves the default
    monkeypatch.setenv("AIRFLOW_VAR_LCLSTREAM_PSIK_CONN_ID", "   ")
    monkeypatch.setenv("AIRFLOW_VAR_LCLSTREAM_INSTRUMENT", "M X")
    errors = DagBag(str(DAGS)).import_errors
    assert len(errors) == 3  # each DAG file, naming the Variables
    for text in errors.values():
        assert "Variable lclstream_psik_conn_id: String should match pattern" in text
        assert "Variable lclstream_instrument: String should match pattern" in text
