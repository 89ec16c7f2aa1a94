"""`python -m lclstream_api.demo` (what `make demo` runs) end to end: a short human summary (JSON only with
--json), its own run folder, and the logs it names still there after it stopped everything."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.lclstream_api.harness import VENV_BIN, env_with_venv


def demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "python"), "-m", "lclstream_api.demo", *args], cwd=cwd,
                          env=env_with_venv(), capture_output=True, text=True, timeout=600)


def test_demo_summarises_keeps_its_logs_and_uses_its_own_folder(tmp_path: Path) -> None:
    result = demo(tmp_path, "--events", "16")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert not any(line.lstrip().startswith(("{", '"')) for line in out.splitlines()), out  # no raw JSON
    assert re.search(r"transfer \w+ of \w+: completed .*: delivered 2 data messages and 2 end-of-rank markers "
                     r"\(4 messages\)", out), out
    assert "received 2 data messages and 2 end-of-rank markers (a buffer counts both: 4 messages)" in result.stderr
    (folder,) = (tmp_path / "demo-output").iterdir()
    assert len(list((folder / "data").glob("*.h5"))) == 2
    shown = re.search(r"logs kept: (\S+) \(service\)", out)
    assert shown and (tmp_path / shown.group(1)).is_file()  # the log it names outlives the demo
    assert list((folder / "service" / "state" / "jobs").glob("*/log/stdout.1"))

    again = demo(tmp_path, "--events", "8", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(list((tmp_path / "demo-output").iterdir())) == 2  # a second folder; the first one untouched
    assert len(list((folder / "data").glob("*.h5"))) == 2
    record = json.loads(again.stdout[again.stdout.index("\n{") + 1:again.stdout.index("\n}") + 2])
    assert record["state"] == "completed" and record["metrics"]["messages_sent"] == 4  # 2 ranks x (1 batch + 1 end marker)


def test_demo_refuses_a_folder_with_another_runs_files(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x.h5").write_bytes(b"")
    result = demo(tmp_path, "--out", "old")
    assert result.returncode == 2 and "--out old is not empty" in result.stderr
    assert "Traceback" not in result.stderr
