"""examples/services/: the service configs the README uses load with the services' own models, say which
ports they open and how to stop them, and run as documented (identities made by identities.sh, the API
answering the user it introduced, SIGTERM stopping it). Only the ports are moved to free ones here."""

from __future__ import annotations

import getpass
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from certified.trust import set_service_url
from lclstream_api.local import listening_urls, stop_process, wait_ready
from lclstream_api.settings import load_settings
from psik.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "examples" / "services"
BIN = Path(sys.executable).parent


def header(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))


def test_lclstream_api_config_loads_and_names_its_ports() -> None:
    path = SERVICES / "lclstream-api.yaml"
    settings = load_settings(path)
    text = header(path)
    for url in (settings.listen, settings.callback_listen):
        assert re.search(rf"^#\s+{url.rsplit(':', 1)[1]}\s", text, re.M), f"port of {url} not described"
    assert f"{settings.port_pool.start}-{settings.port_pool.end}" in text
    assert "Stop:" in text and f"lclstream-api --config {path.relative_to(ROOT)}" in text
    assert settings.state_dir.is_absolute() and settings.certified_config is not None


def test_psik_api_config_loads_and_names_its_port() -> None:
    path = SERVICES / "psik-api.yaml"
    config = load_config(path)
    assert "default" in config.backends and config.prefix.is_absolute()
    text = header(path)
    listen = re.search(r"--listen https://127\.0\.0\.1:(\d+)", text)
    assert listen and f"Ports it opens: {listen.group(1)} on 127.0.0.1" in text and "Stop:" in text


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result


def test_services_run_as_the_readme_says(tmp_path: Path) -> None:
    shutil.copytree(SERVICES, tmp_path / "examples" / "services")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}
    # the services run in their single-user default: they accept the identity named like the login
    # that runs them, which is the name identities.sh gives the user by default
    me = getpass.getuser()
    made = run(["sh", "examples/services/identities.sh", ".services"], tmp_path, {**env, "USER": me})
    assert made.stdout.strip().endswith(f"export CERTIFIED_CONFIG={tmp_path}/.services/{me}")
    again = run(["sh", "examples/services/identities.sh", ".services", me], tmp_path, env)
    assert "kept .services/lclstream-api/identity" in again.stdout
    user = {**env, "CERTIFIED_CONFIG": str(tmp_path / ".services" / me), "LCLSTREAM_SERVER": "lclstream"}

    api_config = tmp_path / "examples" / "services" / "lclstream-api.yaml"
    settings = yaml.safe_load(api_config.read_text())
    pool = random.randrange(30000, 32000)
    settings.update(listen="https://127.0.0.1:0", callback_listen="http://127.0.0.1:0",
                    port_pool={"start": pool, "end": pool + 9})  # free ports instead of 8443, 8444, 20000-20099
    api_config.write_text(yaml.safe_dump(settings))
    psik_args = header(tmp_path / "examples" / "services" / "psik-api.yaml")
    assert "--certified-config .services/psik-api/identity" in psik_args

    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(tmp_path / "api.log", "wb") as log:
            procs.append(subprocess.Popen([str(BIN / "lclstream-api"), "--config", str(api_config)], cwd=tmp_path,
                                          env=env, stdout=log, stderr=log, start_new_session=True))
        with open(tmp_path / "psik.log", "wb") as log:
            procs.append(subprocess.Popen(
                [str(BIN / "psik-api"), "--config", "examples/services/psik-api.yaml", "--listen",
                 "https://127.0.0.1:0", "--certified-config", ".services/psik-api/identity"],
                cwd=tmp_path, env=env, stdout=log, stderr=log, start_new_session=True))
        api_url = wait_ready(tmp_path / "api.log", procs[0])["https"]
        set_service_url("lclstream", api_url, user["CERTIFIED_CONFIG"])  # the alias, at the port it really got
        assert run([str(BIN / "lclstream"), "list"], tmp_path, user).stdout == ""  # answered: no transfers yet

        for _ in range(600):
            psik_url = listening_urls(tmp_path / "psik.log", procs[1].pid).get("https")
            if psik_url or procs[1].poll() is not None:
                break
            time.sleep(0.1)
        assert psik_url, (tmp_path / "psik.log").read_text()
        set_service_url("psik", psik_url, user["CERTIFIED_CONFIG"])
        assert '"default"' in run([str(BIN / "certified"), "message", "psik/v1/backends"], tmp_path, user).stdout
        assert (tmp_path / ".services" / "lclstream-api" / "state" / "transfers.sqlite").is_file()

        for proc in procs:  # the documented way to stop them
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    finally:
        for proc in procs:
            stop_process(proc)
