"""``lclstream-elog`` as a person uses it: local records round trip with human and JSON output; bad input
exits 2 with one line naming the option or field, never a traceback; service errors exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.elog.helpers import elog


@pytest.fixture
def local_run(tmp_path: Path) -> Path:
    """A data root whose local records hold one closed run, mfxcli01/1, of 12 events."""
    data_root = tmp_path / "runs"
    done = elog(["run", "--instrument", "MFX", "--experiment", "mfxcli01", "--detector", "epix10k2M",
                 "--shape", "1,8,8", "--events", "12", "--rate", "500", "--events-per-file", "5",
                 "--data-root", str(data_root), "--no-kafka"])
    assert done.returncode == 0, done.stderr
    return data_root


def test_local_records_round_trip(local_run: Path, tmp_path: Path) -> None:
    root = ["--data-root", str(local_run)]
    listed = elog(["runs", *root])
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("mfxcli01/1 MFX started ") and "closed after" in listed.stdout
    assert "12 events in 3 files" in listed.stdout
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"transfer": "t-1", "events": 12}))
    noted = elog(["annotate", "mfxcli01", "1", "--text", "streamed", "--json", str(summary), *root])
    assert noted.returncode == 0, noted.stderr
    assert noted.stdout.startswith("annotation 1 on mfxcli01/1 by ")
    shown = elog(["show", "mfxcli01", "1", *root])
    assert shown.returncode == 0 and "streamed (+JSON)" in shown.stdout and shown.stdout.count("  file ") == 3
    record = json.loads(elog(["show", "mfxcli01", "1", "--json", *root]).stdout)
    assert record["annotations"][0]["body"] == {"transfer": "t-1", "events": 12}
    assert record["event_count"] == 12
    runs = json.loads(elog(["runs", "--json", "--state", "closed", *root]).stdout)
    assert [(r["experiment"], r["run"]) for r in runs] == [("mfxcli01", 1)]


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--instrument", "MFX", "--experiment", "bad name", "--detector", "epix10k2M", "--no-kafka"],
     "--experiment: String should match pattern"),
    (["run", "--instrument", "MFX", "--experiment", "mfx01", "--detector", "pilatus", "--no-kafka"],
     "--detector: Input should be 'jungfrau4M' or 'epix10k2M'"),
    (["run", "--instrument", "MFX", "--experiment", "mfx01", "--no-kafka"], "--detector: List should have at least 1"),
    (["run", "--instrument", "MFX", "--experiment", "mfx01", "--detector", "epix10k2M", "--rate", "0", "--no-kafka"],
     "--rate: Input should be greater than 0"),
    (["run", "--instrument", "MFX", "--experiment", "mfx01", "--detector", "epix10k2M", "--rate", "nan",
      "--no-kafka"], "--rate: Input should be a finite number"),
    (["run", "--instrument", "MFX", "--experiment", "mfx01", "--detector", "epix10k2M", "--shape", "8x8",
      "--no-kafka"], "--shape '8x8' must look like PANELS,HEIGHT,WIDTH"),
    (["run", "--instrument", "MFX", "--experiment", "mfx01", "--detector", "epix10k2M", "--compression", "lz5",
      "--no-kafka"], "--compression: Input should be 'none', 'gzip'"),
    (["run", "--instrument", "MFX", "--experiment", "mfx01", "--detector", "epix10k2M"],
     "no Kafka broker: give --bootstrap HOST:PORT or set LCLSTREAM_KAFKA_BOOTSTRAP"),
    (["start", "--instrument", "MFX", "--experiment", "mfx01", "--param", "novalue", "--no-kafka"],
     "--param 'novalue' must look like KEY=VALUE"),
    (["start", "--instrument", "M F X", "--experiment", "mfx01", "--no-kafka"], "--instrument: String should match"),
    (["show", "mfx01", "one"], "RUN must be a run number, got 'one'"),
    (["show", "mfx01", "1", "--elog", "nosuchalias"], "--elog nosuchalias:"),
    (["annotate", "mfx01", "1", "--text", "x", "--json", "/nonexistent/summary.json"],
     "--json file '/nonexistent/summary.json' does not exist"),
    (["runs", "--state", "running"], "argument --state: invalid choice: 'running'"),
    (["runs", "--limit", "0"], "--limit must be 1 or more, got 0"),
    (["serve", "--config", "/nonexistent/elog.yaml"], "config file /nonexistent/elog.yaml does not exist"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = elog([*args, *(["--data-root", str(tmp_path / "runs")] if args[0] != "serve" else [])])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "runs").exists(), "bad input opens nothing"


def test_annotating_with_json_that_is_not_an_object(local_run: Path, tmp_path: Path) -> None:
    body = tmp_path / "list.json"
    body.write_text("[1, 2]")
    done = elog(["annotate", "mfxcli01", "1", "--text", "x", "--json", str(body), "--data-root", str(local_run)])
    assert done.returncode == 2
    assert done.stderr.strip() == f"lclstream-elog: error: --json {body}: must hold a JSON object, got list"


def test_unknown_runs_and_closed_runs_exit_1(local_run: Path) -> None:
    root = ["--data-root", str(local_run)]
    missing = elog(["show", "mfxcli01", "7", *root])
    assert missing.returncode == 1
    assert missing.stderr.strip() == "lclstream-elog: ELog error 404: no run 7 in experiment 'mfxcli01'"
    closed = elog(["stop", "mfxcli01", "1", "--no-kafka", *root])
    assert closed.returncode == 1 and "run mfxcli01/1 is closed already" in closed.stderr


@pytest.mark.parametrize(("settings", "message"), [
    ({"database": "x.sqlite", "writers": "daq"}, "writers: Input should be a valid list"),
    ({"listen": "http://127.0.0.1:1"}, "database: required field is missing"),
    ({"database": "x.sqlite", "listen": "http://127.0.0.1:1"}, "listen: listen URL 'http://127.0.0.1:1' must look like https://HOST:PORT"),
    ({"database": "x.sqlite", "writer": ["daq"]}, "writer: unknown field (not allowed)"),
])
def test_a_bad_service_config_names_the_field(tmp_path: Path, settings: dict, message: str) -> None:
    config = tmp_path / "elog.yaml"
    config.write_text(yaml.safe_dump(settings))
    done = elog(["serve", "--config", str(config)])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lclstream-elog: error: config file {config}: ")
    assert message in lines[0]
