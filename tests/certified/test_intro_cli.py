"""The CLI between two configuration directories: init, introduce, add-intro, list, trust lists, modes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from certified.config import Layout
from tests.certified.procs import cli


def env_for(path: Path) -> dict[str, str]:
    return dict(os.environ, CERTIFIED_CONFIG=str(path))


def test_introduce_add_intro_round_trip(tmp_path: Path) -> None:
    server, user = tmp_path / "server", tmp_path / "user"
    done = cli("init", "psik-api", "--org", "Facility", env=env_for(server))
    assert done.returncode == 0, done.stderr
    done = cli("init", "alice", "--config", str(user))  # --config instead of the environment
    assert done.returncode == 0, done.stderr

    intro_file = tmp_path / "alice.intro.json"
    done = cli("introduce", str(Layout(user).id_cert), "--name", "alice", "--days", "30",
               "--service", "psik=https://127.0.0.1:8443", "-o", str(intro_file), env=env_for(server))
    assert done.returncode == 0, done.stderr
    intro = json.loads(intro_file.read_text())
    assert set(intro) == {"name", "signer", "certificate", "ca_certificate", "services"}
    assert intro["name"] == "alice" and intro["signer"] == "psik-api"
    assert intro["services"] == {"psik": "https://127.0.0.1:8443"}
    assert intro["ca_certificate"] == Layout(server).ca_cert.read_text()

    done = cli("add-intro", str(intro_file), env=env_for(user))
    assert done.returncode == 0, done.stderr
    listing = json.loads(cli("list", "--json", env=env_for(user)).stdout)
    assert listing["name"] == "alice"
    assert [(s["name"], s["url"], s["identity"]) for s in listing["services"]] == \
        [("psik", "https://127.0.0.1:8443", "psik-api")]
    assert [i["name"] for i in listing["intros"]] == ["psik-api"]
    assert (Layout(user).known_servers / "psik.crt").read_text() == Layout(server).ca_cert.read_text()

    # the same introduction cannot be installed for another identity
    other = tmp_path / "other"
    assert cli("init", "bob", env=env_for(other)).returncode == 0
    done = cli("add-intro", str(intro_file), env=env_for(other))
    assert done.returncode == 2 and "different public key" in done.stderr

    # trust lists by hand, and the human-readable listing
    assert cli("add-client", "alice-ca", str(Layout(user).ca_cert), env=env_for(server)).returncode == 0
    assert cli("add-service", "me", "https://localhost:9000", str(Layout(server).ca_cert),
               env=env_for(other)).returncode == 0
    text = cli("list", env=env_for(server)).stdout
    assert "alice-ca" in text and "psik-api" in text
    assert "https://localhost:9000" in cli("list", env=env_for(other)).stdout


def test_private_keys_are_0600_and_directory_0700(tmp_path: Path) -> None:
    where = tmp_path / "cfg"
    assert cli("init", "svc", "--key-type", "p256", env=env_for(where)).returncode == 0
    layout = Layout(where)
    for key in (layout.ca_key, layout.id_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert stat.S_IMODE(layout.id_cert.stat().st_mode) == 0o644
    assert json.loads(layout.identity_json.read_text())["key_type"] == "p256"


def test_introduce_refuses_private_keys_and_garbage(tmp_path: Path) -> None:
    server = tmp_path / "server"
    assert cli("init", "srv", env=env_for(server)).returncode == 0
    done = cli("introduce", str(Layout(server).id_key), "--name", "x", env=env_for(server))
    assert done.returncode == 2 and "PRIVATE key" in done.stderr
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    done = cli("introduce", str(junk), "--name", "x", env=env_for(server))
    assert done.returncode == 2 and "not a PEM CSR, certificate or public key" in done.stderr
