"""The lclstreamer command: schema, validate, run, and clear errors (exit 2, no traceback) on bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import h5py
import pytest

from tests.fixtures.terminal import Terminal
from tests.streamer.conftest import REPO, VENV_BIN, cli_env


def assert_bad_input(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_schema_prints_the_json_schema(lclstreamer) -> None:
    result = lclstreamer(["schema"])
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert "data_handlers" in schema["properties"] and "HDF5SerializerConfig" in schema["$defs"]


def test_validate_good_and_bad_files(lclstreamer, small_config, write_config, tmp_path: Path) -> None:
    good = write_config(small_config(tmp_path / "out"), "good.yaml")
    result = lclstreamer(["validate", str(good), str(REPO / "examples" / "demo.yaml")])
    assert result.returncode == 0, result.stderr
    assert "valid: SyntheticEventSource" in result.stdout
    bad_config = small_config(tmp_path / "out")
    bad_config["data_serializer"]["compression"] = "lz5"
    bad = write_config(bad_config, "bad.yaml")
    assert_bad_input(lclstreamer(["validate", str(bad)]), "data_serializer.compression: 'lz5' is not one of")


def test_run_with_bad_compression(lclstreamer, small_config, write_config, tmp_path: Path) -> None:
    config = small_config(tmp_path / "out")
    config["data_serializer"]["compression"] = "lz5"
    result = lclstreamer(["-c", str(write_config(config))])
    assert_bad_input(result, "data_serializer.compression: 'lz5' is not one of", "'bitshuffle_lz4'", "(line ")
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_unknown_type_lists_known_types(lclstreamer, small_config, write_config, tmp_path: Path) -> None:
    config = small_config(tmp_path / "out")
    config["data_handlers"][0]["type"] = "S3UploadDataHandler"
    assert_bad_input(lclstreamer(["-c", str(write_config(config))]),
                     "data_handlers[0].type: unknown data handler type 'S3UploadDataHandler'; known types:",
                     "BinaryFileWritingDataHandler")


@pytest.mark.parametrize("ranks", [None, 2], ids=["no-mpiexec", "mpiexec-n2"])
def test_missing_input_file_is_named(lclstreamer, write_config, tmp_path: Path, ranks: int | None) -> None:
    missing = tmp_path / "run0042.cxi"
    config = write_config({
        "source_identifier": "exp=x:run=42",
        "event_source": {"type": "HDF5EventSource", "files": [str(missing)]},
        "data_sources": {"frame": {"type": "HDF5Dataset", "dataset": "/entry/data"}},
        "data_serializer": {"type": "HDF5Serializer", "fields": {"frame": "/data"}},
        "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path / "o")}],
    })
    result = lclstreamer(["-c", str(config)], ranks=ranks)
    assert_bad_input(result, f"lclstreamer: error: input file {missing} does not exist")
    assert result.stderr.count("does not exist") == 1, "one message, not one per rank"


def test_psana_missing_says_how_to_get_it(lclstreamer, write_config, tmp_path: Path) -> None:
    config = write_config({
        "source_identifier": "exp=mfxp1001121:run=7",
        "event_source": {"type": "Psana1EventSource", "experiment": "mfxp1001121", "run": 7},
        "data_sources": {"jungfrau": {"type": "PsanaDetector", "psana_name": "jungfrau4M"}},
        "data_serializer": {"type": "HDF5Serializer", "fields": {"jungfrau": "/data"}},
        "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path / "o")}],
    })
    assert lclstreamer(["validate", str(config)]).returncode == 0
    result = lclstreamer(["-c", str(config)])
    assert_bad_input(result, "Psana1EventSource needs the psana package", "conda install")
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_config_and_bad_arguments(lclstreamer, tmp_path: Path) -> None:
    assert_bad_input(lclstreamer(["-c", str(tmp_path / "nope.yaml")]),
                     f"config file {tmp_path / 'nope.yaml'} does not exist")
    assert_bad_input(lclstreamer(["-c", str(tmp_path / "nope.yaml"), "--num-events", "-3"]),
                     "--num-events: must be 0 or more")
    assert_bad_input(lclstreamer([]), "-c/--config")


def test_num_events_and_summary_json(lclstreamer, small_config, write_config, tmp_path: Path) -> None:
    config = write_config(small_config(tmp_path / "out", number_of_events=50, batch_size=4))
    summary_path = tmp_path / "summary.json"
    result = lclstreamer(["-c", str(config), "--num-events", "9", "--summary-json", str(summary_path)])
    assert result.returncode == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["events"] == 9 and summary["ranks"][0]["batches"] == 3
    assert summary["handlers"][0]["messages"] == 3
    assert len(list((tmp_path / "out").glob("*.h5"))) == 3
    assert "\r" not in result.stderr, "no progress when stderr is not a terminal"


def test_progress_on_a_terminal(small_config, write_config, tmp_path: Path) -> None:
    config = write_config(small_config(tmp_path / "out", number_of_events=40, batch_size=2))
    with Terminal() as term:
        proc = subprocess.run([str(VENV_BIN / "lclstreamer"), "-c", str(config), "--log-level", "WARNING"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=term.fd, env=cli_env(),
                              timeout=120, check=False)
        shown = term.read_all()
    assert proc.returncode == 0
    assert b"40/40 events" in shown and b"events/s" in shown


PLUGIN_MODULE = '''
from typing import Literal

import numpy as np

from streamer.base import ComponentConfig
from streamer.pipelines.itemwise import ItemwiseStep
from streamer.registry import Component


class AddOffsetConfig(ComponentConfig):
    type: Literal["AddOffset"]
    field: str
    offset: int


class AddOffset(ItemwiseStep):
    def transform(self, data):
        data[self.config.field] = np.asarray(data[self.config.field]) + self.config.offset
        return data


COMPONENT = Component(AddOffsetConfig, AddOffset)
'''


def test_third_party_step_from_an_entry_point(lclstreamer, small_config, write_config, tmp_path: Path) -> None:
    """A package installed beside the streamer adds a processing step through the entry point group."""
    site = tmp_path / "site"
    (site / "offset_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "offset_plugin.py").write_text(PLUGIN_MODULE)
    (site / "offset_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: offset-plugin\nVersion: 0.1\n")
    (site / "offset_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[lclstream.processing_steps]\nAddOffset = offset_plugin:COMPONENT\n")
    config = small_config(tmp_path / "out", number_of_events=6, batch_size=6)
    config["processing_pipeline"].insert(0, {"type": "AddOffset", "field": "pulse_id", "offset": 1000})
    path = write_config(config)
    assert "unknown processing step type 'AddOffset'" in lclstreamer(["validate", str(path)]).stderr
    env = cli_env()
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env.get('PYTHONPATH', '')}"
    result = subprocess.run([str(VENV_BIN / "lclstreamer"), "-c", str(path)], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    (written,) = (tmp_path / "out").glob("*.h5")
    with h5py.File(written, "r") as f:
        assert f["/LCLS/pulse_id"][()].tolist() == [1000, 1001, 1002, 1003, 1004, 1005]


RUNNABLE_EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.yaml")
                           if p.name == "demo.yaml" or p.name.startswith(("pipeline-", "source-synthetic-")))


@pytest.mark.parametrize("example", RUNNABLE_EXAMPLES, ids=[p.name for p in RUNNABLE_EXAMPLES])
def test_synthetic_examples_run(lclstreamer, tmp_path: Path, example: Path) -> None:
    result = lclstreamer(["-c", str(example), "--num-events", "5", "--log-level", "WARNING"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "5 events" in result.stdout
    assert list(tmp_path.glob("*/*.h5")), "the example wrote its files under the working directory"


def test_demo_module(tmp_path: Path) -> None:
    result = subprocess.run([str(VENV_BIN / "python"), "-m", "streamer.demo"], cwd=tmp_path, env=cli_env(),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "64 events, every event exactly once" in result.stdout
    assert len(list((tmp_path / "demo-output").glob("demo_r000[01]_*.h5"))) == 8
