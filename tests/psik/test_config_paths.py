"""Paths in a Psi-k config are relative to the config file's folder, whatever folder psik-api starts in."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
import yaml

from psik.client import PsikClient
from psik.config import load_config
from psik.models import JobState
from tests.fixtures.pki import make_pki
from tests.psik.helpers import psik_api, wait_for


def test_load_config_resolves_paths_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "psik.yaml").write_text(yaml.safe_dump({"prefix": "./jobs"}))
    monkeypatch.chdir(tmp_path)
    assert load_config(Path("conf/psik.yaml")).prefix == conf / "jobs"  # the file's folder, not the current one
    assert load_config(Path("conf/psik.yaml"), Path("cli-jobs")).prefix == tmp_path / "cli-jobs"  # a command line's
    monkeypatch.setenv("PSIK_CONFIG", "conf/psik.yaml")
    assert load_config().prefix == conf / "jobs"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (conf / "home.yaml").write_text(yaml.safe_dump({"prefix": "~/psik/../jobs"}))
    assert load_config(conf / "home.yaml").prefix == tmp_path / "home" / "jobs"


def test_psik_api_started_elsewhere_runs_jobs_under_the_configured_folder(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, server="psik", users=("alice",))
    conf = tmp_path / "conf"
    conf.mkdir()
    config = conf / "psik.yaml"
    config.write_text(yaml.safe_dump({"prefix": "jobs", "backends": {"default": {"type": "local"}},
                                      "accounts": {"alice": getpass.getuser()}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log = tmp_path / "psik-api.log"
    with psik_api(config, pki.server_dir, log, cwd=elsewhere) as url:  # not the config's folder
        pki.add_service_alias("psik", url)
        with PsikClient("psik", pki.user_dir("alice")) as client:
            job = client.submit({"name": "where", "script": "pwd > here.txt"})
            wait_for(lambda: client.get(job.jobid).state.terminal, 60, what="job finished")
            assert client.get(job.jobid).state is JobState.COMPLETED
            assert client.file(job.jobid, "work/here.txt").strip() == str(conf / "jobs" / job.jobid / "work")
    assert not (elsewhere / "jobs").exists()
    assert f"config {config}; paths prefix={conf / 'jobs'} certified_config={pki.server_dir}" in log.read_text()
