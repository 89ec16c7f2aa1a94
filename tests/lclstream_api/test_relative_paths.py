"""A service configured with relative paths runs its transfers, whatever folder it is started from.

Issue 15: ``state_dir: ./state`` used to stay relative, so the buffer job (which runs in its own job
folder) could not find its script and the transfer failed with "exit code 127". Paths in the service's
file are now resolved against the file's folder when it is loaded, and logged at start.
"""

from __future__ import annotations

import getpass
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lclstream_api.local import cancel_jobs, stop_process, wait_ready
from lclstream_api.settings import ServiceConfig, load_settings
from tests.fixtures.pki import Pki, make_pki
from tests.lclstream_api.harness import ALIAS, VENV_BIN, env_with_venv, synthetic_config, wait_for


def _relative_config(conf: Path, pki: Pki) -> Path:
    """service.yaml in ``conf`` naming every path relative to ``conf`` (commands through a bin/ folder)."""
    bin_dir = conf / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("nng-stream", "lclstreamer"):
        (bin_dir / name).symlink_to(VENV_BIN / name)
    pool = random.randrange(20000, 30000 - 10)
    settings = {
        "listen": "https://127.0.0.1:0",
        "callback_listen": "http://127.0.0.1:0",
        "state_dir": "./state",
        "jobs_prefix": "state/../jobs",
        "certified_config": os.path.relpath(pki.server_dir, conf),
        "commands": {"nng_stream": "bin/nng-stream", "lclstreamer": "./bin/lclstreamer"},
        "port_pool": {"start": pool, "end": pool + 9},
        "accounts": {"alice": getpass.getuser()},
        "poll_interval": 0.5,
    }
    path = conf / "service.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def _path_values(config: ServiceConfig) -> list[str]:
    return [str(config.state_dir), str(config.jobs_prefix), str(config.certified_config),
            config.commands.nng_stream, config.commands.lclstreamer]


def test_paths_are_resolved_against_the_config_file_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    pki = make_pki(tmp_path, server="lclstream-api", users=("alice",))
    path = _relative_config(conf, pki)
    monkeypatch.chdir(tmp_path)  # not the config's folder
    config = load_settings(Path("conf") / "service.yaml")
    assert config.state_dir == conf / "state"
    assert config.jobs_prefix == conf / "jobs"
    assert config.certified_config == pki.server_dir
    assert config.commands.nng_stream == str(conf / "bin" / "nng-stream")
    assert config.psik_config().prefix == conf / "jobs"
    assert all(os.path.isabs(p) for p in _path_values(config))
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    data = yaml.safe_load(path.read_text())
    data.update(state_dir="~/lcls/state", commands={"nng_stream": "nng-stream", "lclstreamer": "~/bin/lclstreamer"})
    (conf / "home.yaml").write_text(yaml.safe_dump(data))
    config = load_settings(conf / "home.yaml")
    assert config.state_dir == home / "lcls" / "state"
    assert config.commands.nng_stream == "nng-stream"  # a bare program name stays a $PATH lookup
    assert config.commands.lclstreamer == str(home / "bin" / "lclstreamer")
    assert load_settings({"state_dir": "rel"}).state_dir == tmp_path / "rel"  # a dict: the current directory


@pytest.fixture
def relative_service(tmp_path: Path) -> Iterator[tuple[Path, Pki, Path]]:
    conf = tmp_path / "conf"
    pki = make_pki(tmp_path, server="lclstream-api", users=("alice",))
    config = _relative_config(conf, pki)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log = tmp_path / "lclstream-api.log"
    with open(log, "wb") as fh:  # started from another folder, naming its config relative to that folder
        proc = subprocess.Popen([str(VENV_BIN / "lclstream-api"), "--config", "../conf/service.yaml"],
                                cwd=elsewhere, stdout=fh, stderr=subprocess.STDOUT, env=env_with_venv(),
                                start_new_session=True)
    try:
        pki.add_service_alias(ALIAS, wait_ready(log, proc)["https"])
        yield conf, pki, log
    finally:
        stop_process(proc)
        cancel_jobs(config)
        print("---- lclstream-api log (last 40 lines) ----")
        print("\n".join([x for x in log.read_text(errors="replace").splitlines() if '"caller"' not in x][-40:]))


def test_transfer_through_a_relatively_configured_service_completes(
        tmp_path: Path, relative_service: tuple[Path, Pki, Path]) -> None:
    conf, pki, log = relative_service
    request = tmp_path / "elsewhere" / "run.yaml"
    request.write_text(yaml.safe_dump(synthetic_config(events=16, batch=4)))
    out = tmp_path / "elsewhere" / "out"
    env = env_with_venv({**pki.env("alice"), "LCLSTREAM_SERVER": ALIAS})
    got = subprocess.run([str(VENV_BIN / "lclstream"), "get", "run.yaml", "--out", "out", "--wait", "90"],
                         cwd=tmp_path / "elsewhere", env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    transfer_id = got.stdout.split()[0]
    from lclstream_api.client import TransferClient

    with TransferClient(ALIAS, pki.user_dir("alice")) as api:
        view = wait_for(lambda: (v := api.status(transfer_id)).state.value in ("completed", "failed", "canceled") and v,
                        120, what="transfer finished")
    assert view.state.value == "completed", view.reason
    assert len(list(out.glob("*.h5"))) == 4
    assert (conf / "state" / "transfers.sqlite").is_file()  # beside the config, not in the start folder
    assert not (tmp_path / "elsewhere" / "state").exists()
    assert len(list((conf / "jobs").iterdir())) == 2  # buffer and producer job folders
    started = log.read_text()
    assert f"state_dir={conf / 'state'}" in started and f"jobs_prefix={conf / 'jobs'}" in started
    assert f"nng_stream={conf / 'bin' / 'nng-stream'}" in started
