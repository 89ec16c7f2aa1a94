"""Psik-API over real mutual TLS: ``psik-api`` runs as its own process; users are real certificates."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from certified.http import client as tls_client
from psik.client import PsikAPIError, PsikClient
from psik.models import JobState
from tests.fixtures.pki import Pki, make_pki
from tests.fixtures.slurm import SlurmCluster
from tests.psik.helpers import callback_receiver, psik_api, wait_for


@dataclass
class Api:
    url: str
    pki: Pki
    prefix: Path

    def client(self, user: str) -> PsikClient:
        return PsikClient("psik", self.pki.user_dir(user))

    def raw(self, user: str) -> httpx.Client:
        return tls_client("psik", self.pki.user_dir(user))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, slurm_cluster: SlurmCluster) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("psikapi")
    pki = make_pki(root, server="psik", users=("alice", "bob", "boss"))
    prefix = root / "jobs"
    cfg = root / "psik.yaml"
    me = getpass.getuser()  # these users' jobs run as the test's own account (tests/security: real ones)
    cfg.write_text(json.dumps({"prefix": str(prefix), "admins": ["boss"], "poll_interval": 1.0,
                               "accounts": {"alice": me, "bob": me, "boss": me},
                               "backends": {"default": {"type": "local"},
                                            "private": {"type": "local", "users": ["alice"]},
                                            "small": {"type": "local",
                                                      "limits": {"process_count": 2, "duration": 5}},
                                            "hpc": {"type": "slurm", "queue_name": slurm_cluster.partition}}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])  # for the final cancel of unfinished jobs
        with psik_api(cfg, pki.server_dir, root / "psik-api.log", env=slurm_cluster.env) as url:
            pki.add_service_alias("psik", url)
            yield Api(url=url, pki=pki, prefix=prefix)


def wait_state(c: PsikClient, jobid: str, *states: JobState) -> JobState:
    return wait_for(lambda: c.get(jobid).state if c.get(jobid).state in states else None,
                    timeout=60, what=f"{jobid} to reach {states}")


def test_submit_list_logs_and_ownership(api: Api) -> None:
    with api.client("alice") as alice, api.client("bob") as bob, api.client("boss") as boss:
        rec = alice.submit({"name": "api-job", "script": "echo hello $jobid", "environment": {"X": "1"}})
        assert rec.owner == "alice" and rec.spec.name == "api-job"
        assert wait_state(alice, rec.jobid, JobState.COMPLETED, JobState.FAILED) is JobState.COMPLETED
        assert alice.logs(rec.jobid) == f"hello {rec.jobid}\n"
        assert rec.jobid in [j.jobid for j in alice.list().jobs]
        assert rec.jobid in [j.jobid for j in alice.list(state="completed").jobs]
        assert rec.jobid not in [j.jobid for j in alice.list(state="failed").jobs]
        # bob sees nothing of alice's job: not in his list, 404 for everything
        assert rec.jobid not in [j.jobid for j in bob.list().jobs]
        for call in (bob.get, bob.cancel, bob.rerun, bob.logs):
            with pytest.raises(PsikAPIError) as err:
                call(rec.jobid)
            assert err.value.status == 404
        # the admin sees all
        assert boss.get(rec.jobid).owner == "alice"
        assert rec.jobid in [j.jobid for j in boss.list(limit=1000).jobs]
        again = alice.rerun(rec.jobid)
        assert again.jobndx == 2
        wait_for(lambda: alice.get(rec.jobid).history[-1].state == "completed", timeout=60, what="run 2")
        assert alice.logs(rec.jobid, jobndx=1, tail=1) == f"hello {rec.jobid}\n"


def test_cancel_over_api(api: Api) -> None:
    with api.client("alice") as alice:
        rec = alice.submit({"script": "sleep 300"})
        wait_state(alice, rec.jobid, JobState.ACTIVE)
        assert alice.cancel(rec.jobid).state is JobState.CANCELED
        with pytest.raises(PsikAPIError) as err:
            alice.cancel(rec.jobid)
        assert err.value.status == 409
        assert alice.get(rec.jobid).state is JobState.CANCELED


def test_backend_permissions(api: Api) -> None:
    with api.client("alice") as alice, api.client("bob") as bob:
        assert [b.name for b in alice.backends()] == ["default", "private", "small", "hpc"]
        assert [b.name for b in bob.backends()] == ["default", "small", "hpc"]
        with pytest.raises(PsikAPIError) as err:
            bob.submit({"script": "true", "backend": "private"})
        assert err.value.status == 403
        rec = alice.submit({"script": "true", "backend": "private"})
        assert rec.spec.backend == "private"


def test_bad_jobspec_gets_field_paths(api: Api) -> None:
    with api.raw("alice") as http:
        r = http.post("/v1/jobs", json={"script": "", "resources": {"node_count": 0, "colour": "red"},
                                        "surprise": True, "environment": {"jobid": "x"}})
        assert r.status_code == 422
        locs = {tuple(e["loc"]) for e in r.json()["detail"]}
        assert {("body", "script"), ("body", "resources", "node_count"), ("body", "resources", "colour"),
                ("body", "surprise"), ("body", "environment")} <= locs
        r = http.post("/v1/jobs", json={"script": "true", "backend": "nonexistent"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "backend"]
        r = http.get("/v1/jobs", params={"state": "sleeping", "limit": 0})
        assert r.status_code == 422
        assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("query", "state"), ("query", "limit")}
        assert http.get("/openapi.json").json()["info"]["title"] == "Psik-API"


def test_path_traversal_refused(api: Api) -> None:
    with api.raw("alice") as http, api.client("alice") as alice:
        for directory in ("../../etc", "/etc", "work/../../x"):
            r = http.post("/v1/jobs", json={"script": "true", "directory": directory})
            assert r.status_code == 400, directory
            assert "directory" in r.json()["detail"]
        rec = alice.submit({"script": f"ln -s {api.prefix} escape\necho result > out.txt"})
        wait_state(alice, rec.jobid, JobState.COMPLETED)
        assert alice.file(rec.jobid, "work/out.txt") == "result\n"
        for path in ("../x", "/etc/passwd", "work/escape/x", "spec.json"):
            r = http.get(f"/v1/jobs/{rec.jobid}/files", params={"path": path})
            assert r.status_code == 400, path
        assert http.get("/v1/jobs/..%2F..%2Fetc").status_code in (400, 404)
        assert http.get("/v1/jobs/not-a-job-id").status_code == 400


def test_foreign_certificate_refused(api: Api) -> None:
    with api.raw("mallory") as http, pytest.raises(httpx.HTTPError):
        http.get("/v1/backends")


def test_signed_callbacks_and_secret_never_returned(api: Api) -> None:
    with api.client("alice") as alice, callback_receiver("hidden") as receiver:
        rec = alice.submit({"script": "true", "callback": receiver.url, "cb_secret": "hidden"})
        assert rec.spec.cb_secret is None and alice.get(rec.jobid).spec.cb_secret is None
        assert "hidden" not in alice.list().model_dump_json()
        wait_for(lambda: receiver.states(rec.jobid) == [(1, "new"), (1, "queued"), (1, "active"), (1, "completed")],
                 timeout=60, what="4 signed callbacks from the API's job")
        assert receiver.rejected == []


def test_slurm_job_killed_outside_is_reported_by_the_server(api: Api, slurm_cluster: SlurmCluster) -> None:
    """Nobody asks about the job: the server's own reconciliation notices and posts the callback."""
    with api.client("alice") as alice, callback_receiver("k") as receiver:
        rec = alice.submit({"script": "sleep 600", "backend": "hpc", "callback": receiver.url, "cb_secret": "k"})
        wait_for(lambda: (1, "active") in receiver.states(rec.jobid), timeout=120, what="active callback")
        native = (api.prefix / rec.jobid / "native.1").read_text().strip()
        slurm_cluster.run("scancel", native)
        wait_for(lambda: (1, "canceled") in receiver.states(rec.jobid), timeout=60,
                 what="canceled callback from the server's reconciliation")
        done = alice.get(rec.jobid)
        assert done.state is JobState.CANCELED and "outside psik" in done.info


def test_resources_above_backend_limits_get_422_and_create_nothing(api: Api) -> None:
    with api.client("alice") as alice, api.raw("alice") as http:
        small = next(b for b in alice.backends() if b.name == "small")
        assert (small.limits.process_count, small.limits.duration) == (2, 5)
        before = alice.list(limit=10_000).total
        r = http.post("/v1/jobs", json={"script": "true", "backend": "small",
                                        "resources": {"process_count": 3, "duration": 10}})
        assert r.status_code == 422
        assert [(e["loc"], e["msg"]) for e in r.json()["detail"]] == [
            (["body", "resources", "duration"], "10 is more than backend 'small' allows (5)"),
            (["body", "resources", "process_count"], "3 is more than backend 'small' allows (2)")]
        assert alice.list(limit=10_000).total == before, "nothing was created"
        rec = alice.submit({"script": "true", "backend": "small", "resources": {"process_count": 2, "duration": 5}})
        assert wait_state(alice, rec.jobid, JobState.COMPLETED, JobState.FAILED) is JobState.COMPLETED
