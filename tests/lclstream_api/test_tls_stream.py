"""Data streams are protected by default; plain tcp only where the service allows it, and then said."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lclstream_api.client import TransferAPIError
from lclstream_api.settings import SettingsError, load_settings
from tests.fixtures.pki import Pki
from tests.lclstream_api.harness import VENV_BIN, Service, env_with_venv, synthetic_config, wait_for


def test_plain_tcp_is_refused_unless_the_service_allows_it(service: Service) -> None:
    with service.client("alice") as api:
        with pytest.raises(TransferAPIError) as refused:
            api.request(synthetic_config(), {"tls": False})
        assert refused.value.status == 422
        assert "options.tls" in str(refused.value) and "allow_plain_tcp" in str(refused.value)
        assert api.list() == []
        view = api.request(synthetic_config(events=8))  # the default: protected
        assert view.protected and view.options.tls and view.url.startswith("tls+tcp://")
        api.cancel(view.id)


def test_a_protected_stream_pulled_by_url_with_the_credentials_saved_as_files(service: Service,
                                                                             tmp_path: Path) -> None:
    """What a consumer outside this package does: fetch the credentials once, keep the files, pull by url."""
    with service.client("alice") as api:
        view = api.request(synthetic_config(events=16, batch=4), {"ranks": 2})
        creds = api.credentials(view.id)
        assert creds.protected and creds.url == view.url and creds.server_name == "127.0.0.1"
        files = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
        for name, pem in (("cert", creds.cert_pem), ("key", creds.key_pem), ("ca", creds.ca_pem)):
            files[name].write_text(pem or "")
        files["key"].chmod(0o600)
        got = subprocess.run([str(VENV_BIN / "lclstream"), "pull", view.url, "--out", str(tmp_path / "out"),
                              "--wait", "60", *(f"--{n}={p}" for n, p in files.items())],
                             capture_output=True, text=True, timeout=120, env=env_with_venv())
        assert got.returncode == 0, got.stderr
        assert "complete: every producer's sequence received" in got.stderr
        missing = subprocess.run([str(VENV_BIN / "lclstream"), "pull", view.url], capture_output=True, text=True,
                                 timeout=60, env=env_with_venv())
        assert missing.returncode == 2 and "give --cert, --key and --ca, or pull it by transfer id" in missing.stderr
        wait_for(lambda: api.status(view.id).state.value == "completed", 60, what="completed")


def test_an_allowed_plain_tcp_stream_says_it_is_not_protected(tmp_path: Path, api_pki: Pki) -> None:
    with Service(tmp_path / "svc", api_pki, overrides={"allow_plain_tcp": True}).running() as service, \
            service.client("alice") as api:
        view = api.request(synthetic_config(events=16, batch=4), {"ranks": 2, "tls": False})
        assert not view.protected and view.url.startswith("tcp://127.0.0.1:")
        creds = api.credentials(view.id)
        assert not creds.protected and creds.cert_pem is None and creds.key_pem is None
        got = subprocess.run([str(VENV_BIN / "lclstream"), "pull", view.id, "--server", "lclstream",
                              "--out", str(tmp_path / "out"), "--wait", "60"], capture_output=True, text=True,
                             timeout=120,
                             env=env_with_venv({"CERTIFIED_CONFIG": str(service.pki.user_dir("alice"))}))
        assert got.returncode == 0, got.stderr
        assert f"warning: transfer {view.id} streams over plain tcp" in got.stderr
        assert "complete: every producer's sequence received" in got.stderr
        wait_for(lambda: api.status(view.id).state.value == "completed", 60, what="completed")


def test_the_former_static_data_identity_is_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="data_tls is no longer used"):
        load_settings({"state_dir": str(tmp_path), "data_tls": {"cert": "a", "key": "b", "ca": "c"}})
    with pytest.raises(SettingsError, match="max_message_size"):
        load_settings({"state_dir": str(tmp_path), "max_message_size": "lots"})
    assert load_settings({"state_dir": str(tmp_path), "max_message_size": "64M"}).max_message_size == 64 << 20
