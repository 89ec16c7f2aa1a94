"""Who may do what: certificates, ownership, validation, idempotency, limits, signed callbacks."""

from __future__ import annotations

import json
import sqlite3
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from certified.signature import sign
from lclstream_api.client import TransferAPIError
from tests.lclstream_api.harness import VENV_BIN, Service, env_with_venv, synthetic_config


def test_no_certificate_or_foreign_ca_is_refused(service: Service) -> None:
    context = ssl.create_default_context(cadata=service.pki.server_ca_pem.decode())
    with httpx.Client(verify=context, timeout=20) as anonymous, pytest.raises(httpx.TransportError):
        anonymous.get(f"{service.url}/v1/transfers")
    with service.client("mallory") as mallory, pytest.raises(httpx.TransportError):
        mallory.list()


def test_openapi_document_carries_the_streamer_schema(service: Service) -> None:
    with service.client("alice") as api:
        doc = api.http.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "TransferRequest" in schemas and "TransferOptions" in schemas
    assert any("SyntheticEventSource" in name for name in schemas)
    assert "Idempotency-Key" in str(doc["paths"]["/v1/transfers"]["post"]["parameters"])


def test_invalid_config_and_options_get_422_with_field_paths(service: Service, tmp_path: Path) -> None:
    bad = synthetic_config()
    bad["data_serializer"]["compression"] = "lz5"
    with service.client("alice") as api:
        response = api.http.post("/v1/transfers", json={"config": bad, "options": {"ranks": 0}})
        assert response.status_code == 422
        locs = [err["loc"] for err in response.json()["detail"]]
        assert any(loc[:3] == ["body", "config", "data_serializer"] and loc[-1] == "compression" for loc in locs)
        assert ["body", "options", "ranks"] in locs
        with pytest.raises(TransferAPIError) as too_many:
            api.request(synthetic_config(), {"ranks": 1000})
        assert too_many.value.status == 422 and "options.ranks" in str(too_many.value)
        with pytest.raises(TransferAPIError, match="options.backend"):
            api.request(synthetic_config(), {"backend": "nersc"})
        assert api.list() == []  # nothing was started
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    done = subprocess.run([str(VENV_BIN / "lclstream"), "request", str(path), "--server", "lclstream"],
                          capture_output=True, text=True, timeout=60,
                          env=env_with_venv({"CERTIFIED_CONFIG": str(service.pki.user_dir("alice"))}))
    assert done.returncode == 2, done.stderr
    assert "config.data_serializer" in done.stderr and "compression" in done.stderr
    assert "Traceback" not in done.stderr


def test_ownership_idempotency_and_the_per_user_limit(service: Service) -> None:
    with service.client("alice") as alice, service.client("bob") as bob, service.client("admin") as admin:
        first = alice.request(synthetic_config(), idempotency_key="mfxp1001121:run7")
        again = alice.http.post("/v1/transfers", headers={"Idempotency-Key": "mfxp1001121:run7"},
                                json={"config": synthetic_config(), "options": {}})
        assert again.status_code == 200 and again.json()["id"] == first.id
        assert [t.id for t in alice.list()] == [first.id]

        for call in (lambda: bob.status(first.id), lambda: bob.cancel(first.id)):
            with pytest.raises(TransferAPIError) as hidden:
                call()
            assert hidden.value.status == 404
        assert bob.list() == []
        assert [t.id for t in admin.list()] == [first.id] and admin.status(first.id).owner == "alice"

        second = alice.request(synthetic_config(seed=8))
        with pytest.raises(TransferAPIError) as limited:
            alice.request(synthetic_config(seed=9))
        assert limited.value.status == 429 and "limit 2" in str(limited.value)
        bob_own = bob.request(synthetic_config(seed=9))  # the limit is per user
        for api, transfer in ((alice, first), (alice, second), (bob, bob_own)):
            assert api.cancel(transfer.id).state.value == "canceled"
        third = alice.request(synthetic_config(seed=10))  # room again
        assert admin.cancel(third.id).reason == "canceled by admin"


def test_callbacks_need_the_transfer_signature(service: Service) -> None:
    with service.client("alice") as api:
        view = api.request(synthetic_config())
        callback = f"{service.settings['callback_listen']}/v1/callbacks/buffer?transfer={view.id}"
        forged = b'{"state": "failed", "reason": "forged"}'
        with httpx.Client(timeout=20) as http:
            assert http.post(callback, content=forged,
                             headers={"x-hub-signature-256": sign(forged, "guess")}).status_code == 403
            assert http.post(callback, content=forged).status_code == 403
            unknown = callback.replace(view.id, "nosuchtransfer")
            assert http.post(unknown, content=forged,
                             headers={"x-hub-signature-256": sign(forged, "guess")}).status_code == 403
            with sqlite3.connect(Path(service.settings["state_dir"]) / "transfers.sqlite") as db:
                record = db.execute("SELECT record FROM transfers WHERE id = ?", (view.id,)).fetchone()[0]
            secret = yaml.safe_load(record)["cb_secret"]
            job_callback = callback.replace("/buffer?", "/job?")
            stranger = b'{"jobid": "x", "jobndx": 1, "state": "active", "info": ""}'
            signed = http.post(job_callback, content=stranger, headers={"x-hub-signature-256": sign(stranger, secret)})
            assert signed.status_code == 422 and "not a job of transfer" in signed.text  # signed, but no job of it
            job_body = json.dumps({"jobid": view.jobs["buffer"].jobid, "jobndx": 1, "state": "active"}).encode()
            signed = http.post(job_callback, content=job_body, headers={"x-hub-signature-256": sign(job_body, secret)})
            assert signed.status_code == 204
        assert api.status(view.id).state.value != "failed"  # the forged "failed" changed nothing
        api.cancel(view.id)
