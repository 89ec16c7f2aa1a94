"""The run DAGs' settings (Variables) and the plan of one run: every value checked before anything starts,
each error naming the Variable or the form field; the streamer config rendered from the shipped template."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_provider_lclstream.run_dags.plan import PlanError, plan_run
from airflow_provider_lclstream.run_dags.settings import (
    DagWiring,
    SettingsError,
    StreamSettings,
    read_settings,
    variables_table,
)
from elog.events import RunEvent
from streamer.config import load_config

DAGS = Path(__file__).resolve().parents[3] / "dags"
NOW = datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC)


def event(**changes: object) -> RunEvent:
    data: dict[str, object] = {"type": "run_start", "instrument": "MFX", "experiment": "mfxp1001121", "run": 12,
                               "time": NOW, "run_dir": "/data/mfx/r0012", "detectors": ["jungfrau4M", "epix10k2M"]}
    return RunEvent.model_validate({**data, **changes})


def settings(**variables: str) -> StreamSettings:
    return read_settings(StreamSettings, get=lambda name: variables.get(name))


def test_unset_variables_leave_the_defaults() -> None:
    assert read_settings(DagWiring, get=lambda name: None) == DagWiring()
    s = settings()
    assert (s.serializer, s.compression, s.batch_size, s.ranks) == ("HDF5Serializer", "bitshuffle_lz4", 4, 1)
    assert s.consumer_command.startswith("lclstream pull {transfer_id} --server {server} --out {out_dir}")


def test_text_variables_are_taken_as_text_and_the_others_as_json() -> None:
    s = settings(lclstream_consumer_command="mycrystfel --in {url}", lclstream_ranks="3",
                 lclstream_detectors='["jungfrau4M"]', lclstream_consumer_environment='{"CERTIFIED_CONFIG": "/x"}',
                 lclstream_serializer="MsgpackSerializer")
    assert s.consumer_command == "mycrystfel --in {url}" and s.ranks == 3 and s.detectors == ["jungfrau4M"]
    assert s.consumer_environment == {"CERTIFIED_CONFIG": "/x"} and s.serializer == "MsgpackSerializer"


@pytest.mark.parametrize(("variables", "words"), [
    ({"lclstream_ranks": "two"}, "Variable lclstream_ranks: not JSON"),
    ({"lclstream_ranks": "0"}, "Variable lclstream_ranks: Input should be greater than or equal to 1"),
    ({"lclstream_serializer": "JSONSerializer"}, "Variable lclstream_serializer: Input should be"),
    ({"lclstream_compression": "lz5"}, "Variable lclstream_compression"),
    ({"lclstream_detectors": '["bad name!"]'}, "Variable lclstream_detectors: 'bad name!' is not a detector name"),
    ({"lclstream_transfer_options": '{"ranks": 2}'}, "ranks: set by the Variables lclstream_ranks"),
    ({"lclstream_transfer_options": '{"idle_timeout": -1}'}, "Variable lclstream_transfer_options"),
    ({"lclstream_consumer_resources": '{"duration": 0}'}, "Variable lclstream_consumer_resources"),
    ({"lclstream_consumer_backend": "no such/backend"}, "Variable lclstream_consumer_backend"),
    ({"lclstream_colour": "red", "lclstream_batch_size": "[1]"}, "Variable lclstream_batch_size"),
])
def test_a_bad_variable_is_named(variables: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError) as err:
        settings(**variables)
    assert words in str(err.value)


def test_a_bad_form_value_is_named_by_its_field() -> None:
    with pytest.raises(SettingsError, match="^batch_size: Input should be greater than or equal to 1"):
        read_settings(StreamSettings, get=lambda name: None, overrides={"batch_size": 0})


def test_every_variable_is_documented() -> None:
    for name, _default, meaning in variables_table(StreamSettings) + variables_table(DagWiring):
        assert name.startswith("lclstream_") and meaning, name


def test_a_run_is_planned_from_the_shipped_template() -> None:
    plan = plan_run(event(), settings(lclstream_consumer_environment='{"CERTIFIED_CONFIG": "/pki/h p c"}'), DAGS,
                    owner="airflow", reader="hpc")
    config = load_config(plan.config)  # the streamer's own model takes it
    assert config.event_source.run_dir == "/data/mfx/r0012"  # type: ignore[union-attr]
    assert set(config.data_sources) == {"jungfrau4M", "epix10k2M", "pulse_id", "timestamp"}
    assert plan.config["data_serializer"]["compression"] == "bitshuffle_lz4"
    assert plan.options == {"ranks": 1, "readers": ["hpc"]}
    assert plan.run_event["key"] == "mfxp1001121/12"
    assert plan.out_dir == "lclstream-data/mfxp1001121/r0012"
    lines = plan.consumer_script.splitlines()
    assert "export CERTIFIED_CONFIG='/pki/h p c'" in lines
    assert ('lclstream pull "$LCLSTREAM_TRANSFER_ID" --server lclstream --out lclstream-data/mfxp1001121/r0012 '
            "--summary-json -") in lines
    assert plan.consumer_backend == "default" and plan.consumer_resources == {"duration": 60}


def test_the_owner_is_no_reader_of_its_own_transfer() -> None:
    assert plan_run(event(), settings(), DAGS, owner="airflow", reader="airflow").options["readers"] == []


def test_msgpack_and_chosen_detectors() -> None:
    plan = plan_run(event(), settings(lclstream_serializer="MsgpackSerializer", lclstream_detectors='["epix10k2M"]',
                                      lclstream_batch_size="8"), DAGS)
    assert plan.config["data_serializer"] == {"type": "MsgpackSerializer", "array_type": "crystfel"}
    assert set(plan.config["data_sources"]) == {"epix10k2M", "pulse_id", "timestamp"}
    assert plan.config["processing_pipeline"] == [{"type": "BatchProcessingPipeline", "batch_size": 8}]


def test_a_run_without_a_run_dir_uses_the_template_variable() -> None:
    with pytest.raises(PlanError, match="names no run directory, and the Variable lclstream_run_dir"):
        plan_run(event(run_dir=None), settings(), DAGS)
    plan = plan_run(event(run_dir=None), settings(lclstream_run_dir="/sdf/{instrument}/{experiment}/r{run:04d}"), DAGS)
    assert plan.config["event_source"]["run_dir"] == "/sdf/MFX/mfxp1001121/r0012"


@pytest.mark.parametrize(("variables", "strict", "words"), [
    ({"lclstream_detectors": '["jungfrau16M", "epix10k2M"]'}, True, "detectors: jungfrau16M is not recorded in run"),
    ({"lclstream_detectors": '["jungfrau16M"]'}, False, "none of the detectors jungfrau16M"),
    ({"lclstream_consumer_command": "lclstream pull {transfer} --out {out_dir}"}, False,
     "consumer command: unknown placeholder {transfer}"),
    ({"lclstream_consumer_out_dir": "/scratch/{user}/r{run}"}, False,
     "lclstream_consumer_out_dir: unknown placeholder 'user'"),
    ({"lclstream_streamer_config": "/no/such/template.yaml"}, False, "/no/such/template.yaml"),
])
def test_what_cannot_be_planned_is_said_before_anything_starts(variables: dict[str, str], strict: bool,
                                                               words: str) -> None:
    with pytest.raises(PlanError) as err:
        plan_run(event(), settings(**variables), DAGS, strict=strict)
    assert words in str(err.value)


def test_a_template_the_streamer_refuses_names_the_field(tmp_path: Path) -> None:
    template = tmp_path / "bad.yaml"
    template.write_text((DAGS / "lclstream_configs" / "live_run.yaml").read_text().replace(
        "idle_timeout: {{ stream.idle_timeout }}", "idle_timeout: -1"))
    with pytest.raises(PlanError, match="event_source.idle_timeout"):
        plan_run(event(), settings(lclstream_streamer_config=str(template)), DAGS)
    template.write_text("source_identifier: {{ run_event.no_such_field }}\n")
    with pytest.raises(PlanError, match="no_such_field"):
        plan_run(event(), settings(lclstream_streamer_config=str(template)), DAGS)


def test_the_readme_documents_every_variable() -> None:
    readme = (DAGS.parent / "README.md").read_text()
    for name, _default, _meaning in variables_table(StreamSettings) + variables_table(DagWiring):
        assert f"| `{name}` |" in readme, f"README: no row for the Variable {name}"
