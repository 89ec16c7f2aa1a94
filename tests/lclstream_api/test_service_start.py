"""Readiness of a started lclstream-api is its own word (its "listening" lines), never a probe of a port.

The flaky first request (connection reset in the TLS handshake) came from a probe that accepted any
listener: when another process held the port the service was given, the probe connected to that process,
the service exited with "cannot listen", and the client's handshake went to the stranger."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from lclstream_api.local import listening_urls, wait_ready
from tests.fixtures.pki import Pki
from tests.lclstream_api.harness import VENV_BIN, Service, env_with_venv


def test_ports_come_from_the_service_and_restarts_keep_them(tmp_path: Path, api_pki: Pki) -> None:
    service = Service(tmp_path / "svc", api_pki)
    try:
        service.start()
        first = dict(service.settings)
        assert first["listen"] == service.url and not first["listen"].endswith(":0")
        assert not first["callback_listen"].endswith(":0")
        with service.client("alice") as api:
            assert api.list() == []
        service.restart()
        assert yaml.safe_load(service.config_path.read_text())["listen"] == first["listen"]
        urls = listening_urls(service.log_path, service.proc.pid)  # type: ignore[union-attr]
        assert urls == {"https": first["listen"], "http": first["callback_listen"]}
        with service.client("alice") as api:
            assert api.list() == []
    finally:
        service.stop()


def test_a_port_held_by_another_process_is_an_error_not_a_stranger(tmp_path: Path, api_pki: Pki) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()  # accepts connections, as the process that took the port did
        port = stranger.getsockname()[1]
        service = Service(tmp_path / "svc", api_pki)
        service.settings["listen"] = f"https://127.0.0.1:{port}"
        service.config_path.write_text(yaml.safe_dump(service.settings))
        log = service.log_path.open("ab")
        proc = subprocess.Popen([str(VENV_BIN / "lclstream-api"), "--config", str(service.config_path)],
                                stdout=log, stderr=log, env=env_with_venv(), start_new_session=True)
        try:
            with pytest.raises(RuntimeError, match=f"exited with code 2 before listening: .*{port}.*in use"):
                wait_ready(service.log_path, proc, timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            log.close()
