"""Config model and loader: every shipped example validates; errors name their path and say what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.config import ConfigError, StreamerConfig, config_schema, load_config
from streamer.registry import components
from tests.streamer.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert "demo.yaml" in names
    assert any(n.startswith("source-") for n in names)
    assert any(n.startswith("pipeline-") for n in names)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_validates(path: Path) -> None:
    config = load_config(path)
    assert config.data_handlers


def base_config(tmp_path: Path) -> dict:
    return {
        "source_identifier": "exp=x:run=1",
        "event_source": {"type": "SyntheticEventSource", "number_of_events": 4},
        "data_sources": {"pulse_id": {"type": "SyntheticScalar", "kind": "pulse_id"}},
        "processing_pipeline": [],
        "data_serializer": {"type": "HDF5Serializer", "fields": {"pulse_id": "/pulse_id"}},
        "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path)}],
    }


def errors_of(config: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config(config)
    return dict(info.value.errors)


def test_bad_compression_names_path_and_allowed_values(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    config["data_serializer"]["compression"] = "lz5"
    errors = errors_of(config)
    message = errors["data_serializer.compression"]
    assert message.startswith("'lz5' is not one of")
    assert "'bitshuffle_lz4'" in message and "'gzip'" in message


def test_unknown_type_lists_known_types(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    config["event_source"] = {"type": "KafkaEventSource"}
    config["processing_pipeline"] = [{"type": "Nope"}]
    errors = errors_of(config)
    assert "unknown event source type 'KafkaEventSource'" in errors["event_source.type"]
    for name in components("event_sources"):
        assert name in errors["event_source.type"]
    assert "BatchProcessingPipeline" in errors["processing_pipeline[0].type"]


def test_unknown_key_missing_key_and_all_errors_at_once(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    config["event_source"]["seeed"] = 1
    del config["data_serializer"]["fields"]
    config["extra_section"] = 1
    errors = errors_of(config)
    assert "unknown key 'seeed'" in errors["event_source.seeed"]
    assert "seed" in errors["event_source.seeed"].split("allowed keys:")[1]
    assert errors["data_serializer.fields"] == "required key is missing"
    assert "unknown key 'extra_section'" in errors["extra_section"]


def test_data_source_must_fit_event_source(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    config["data_sources"]["raw"] = {"type": "HDF5Dataset", "dataset": "/data"}
    errors = errors_of(config)
    assert "HDF5Dataset cannot be read by SyntheticEventSource" in errors["data_sources.raw.type"]


def test_single_mapping_pipeline_is_a_list_and_yaml_lines_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "source_identifier: a\n"
        "event_source: {type: SyntheticEventSource, number_of_events: 3}\n"
        "data_sources:\n  pid: {type: SyntheticScalar, kind: pulse_id}\n"
        "processing_pipeline:\n  type: BatchProcessingPipeline\n  batch_size: 0\n"
        "data_serializer: {type: HDF5Serializer, fields: {pid: /pid}}\n"
        f"data_handlers:\n  - type: BinaryFileWritingDataHandler\n    write_directory: {tmp_path}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors[0][0] == "processing_pipeline.batch_size"
    assert info.value.lines["processing_pipeline.batch_size"] == 7
    assert "(line 7)" in info.value.describe()
    good = path.read_text().replace("batch_size: 0", "batch_size: 2")
    path.write_text(good)
    assert len(load_config(path).processing_pipeline) == 1


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file .*nothing.yaml does not exist"):
        load_config(tmp_path / "nothing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("event_source: [1\n")
    with pytest.raises(ConfigError, match="cannot parse config file"):
        load_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listing)


def test_json_round_trip_and_schema(tmp_path: Path) -> None:
    config = load_config(base_config(tmp_path))
    again = StreamerConfig.model_validate_json(config.model_dump_json())
    assert again == config
    json_path = tmp_path / "c.json"
    json_path.write_text(config.model_dump_json())
    assert load_config(json_path) == config
    schema = config_schema()
    assert set(schema["required"]) >= {"source_identifier", "event_source", "data_sources", "data_serializer",
                                       "data_handlers"}
    assert schema["additionalProperties"] is False
    assert "SyntheticAreaDetectorConfig" in schema["$defs"]


def test_data_names_must_exist_where_they_are_used(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    config["data_sources"]["tof"] = {"type": "SyntheticWaveformDigitizer", "channels": 2, "samples": 64}
    config["processing_pipeline"] = [
        {"type": "TimeOfFlightWindowing", "field": "tfo", "threshold": 10},
        {"type": "TimeOfFlightPeakFinder", "field": "tof", "threshold": 10, "output_prefix": "e"},
        {"type": "BatchProcessingPipeline", "batch_size": 2},
    ]
    config["data_serializer"]["fields"] = {"e_times": "/t", "e_hits": "/n", "tof": "/w", "pulse_id": "/p"}
    errors = errors_of(config)
    assert errors["processing_pipeline[0].field"].startswith("no data named 'tfo' here; available: pulse_id, tof")
    assert "no data named 'tof'" in errors["data_serializer.fields.tof"], "the peak finder dropped the waveform"
    assert len(errors) == 2
    config["processing_pipeline"][0]["field"] = "tof"
    del config["data_serializer"]["fields"]["tof"]
    assert load_config(config).data_serializer.fields["e_times"] == "/t"
