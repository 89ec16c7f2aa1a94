"""LCLStream-API checks a request against its backends' limits and its caller's account before creating
anything: 422 naming the field (not 201 followed by ``failed``), 403 for an identity without an OS account.
A real ``lclstream-api`` process on loopback with the local Psi-k backend.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import httpx

from certified.http import client as tls_client
from tests.fixtures.pki import make_pki
from tests.lclstream_api.harness import ALIAS, Service, synthetic_config


def _post(service: Service, user: str, options: dict[str, object]) -> httpx.Response:
    with tls_client(ALIAS, service.pki.user_dir(user)) as http:
        return http.post("/v1/transfers", json={"config": synthetic_config(events=8), "options": options})


def _nothing_created(service: Service) -> None:
    state = Path(service.settings["state_dir"])
    assert not any((state / "transfers").iterdir()), "no transfer folder"
    assert not (state / "jobs").exists() or not any((state / "jobs").iterdir()), "no job"
    with service.client("alice") as api:
        assert api.list() == []


def test_options_above_the_backends_limits_and_callers_without_accounts(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, server="lclstream-api", users=("alice", "bob"))
    backends = {"default": {"type": "local", "limits": {"process_count": 2, "duration": 30}},
                "big": {"type": "local", "limits": {"process_count": 4}}}
    service = Service(tmp_path / "svc", pki, overrides={"backends": backends,
                                                        "accounts": {"alice": getpass.getuser()}})
    try:
        service.start()
        refusals = [
            ({"ranks": 3}, "options.ranks", "3 ranks are more than backend 'default' runs in one job (2 processes)"),
            ({"ranks": 5, "backend": "big"}, "options.ranks",
             "5 ranks are more than backend 'big' runs in one job (4 processes)"),
            ({"total_timeout": 3600}, "options.total_timeout",
             "3600 s is longer than backend 'default' runs a job (at most 1740 s for a transfer)"),
            ({"total_timeout": 40 * 24 * 3600, "backend": "big"}, "options.total_timeout",
             "3456000 s is longer than backend 'big' runs a job (at most 2591940 s for a transfer)"),
            ({"total_timeout": 7200, "backend": "big"}, "options.total_timeout",  # the buffer runs on 'default'
             "7200 s is longer than backend 'default' runs a job (at most 1740 s for a transfer)"),
        ]
        for options, field, message in refusals:
            r = _post(service, "alice", options)
            assert r.status_code == 422, (options, r.text)
            assert r.json()["detail"] == [{"loc": ["body", *field.split(".")], "msg": message, "type": "value_error"}]
        r = _post(service, "bob", {})
        assert r.status_code == 403
        assert r.json()["detail"] == ("identity 'bob' has no OS account on this service; an operator must map it "
                                      "in the Psi-k configuration's `accounts`")
        _nothing_created(service)
        assert "transfer refused for bob" in service.log_text()

        with service.client("alice") as api:  # within the limits: its jobs get the backend's longest run
            view = api.request(synthetic_config(events=8), {"ranks": 2, "idle_timeout": 120})
            jobs = api.status(view.id).jobs
            api.cancel(view.id)
        state = Path(service.settings["state_dir"])
        for job in jobs.values():
            spec = json.loads((state / "jobs" / job.jobid / "spec.json").read_text())
            assert spec["resources"]["duration"] == 30
    finally:
        service.stop()
        service.cleanup_jobs()
