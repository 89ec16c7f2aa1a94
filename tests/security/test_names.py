"""A name is only what its issuer may vouch for: lab CAs against Psik-API and LCLStream-API, as an attacker.

A lab CA trusted as ``alice-lab`` issues certificates for ``operator`` (the admin), ``bob`` and for no
name at all: each is refused with 403 and a log line, and nothing is created. Another lab CA trusted
under the very name ``operator`` authenticates ``operator``, but admin rights belong to the service's
own CA: it sees none of the others' jobs or transfers, while the real admin still sees everything.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from certified.http import client as tls_client
from lclstream_api.client import TransferAPIError, TransferClient
from psik.client import PsikClient
from tests.fixtures.labs import Lab
from tests.fixtures.pki import Pki, make_pki
from tests.lclstream_api.harness import Service, synthetic_config
from tests.psik.helpers import psik_api, wait_for

LAB_OPERATOR = "certificate names 'operator', but its issuer, trusted as 'alice-lab', may vouch only for " \
               "'alice-lab' or 'alice-lab/...'"


@dataclass
class Deployment:
    root: Path
    pki: Pki
    members: dict[str, Path]
    log: Path

    def dir(self, who: str) -> Path:
        return self.members.get(who) or self.pki.user_dir(who)

    def refusals(self) -> list[dict[str, object]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"caller refused"' in line:
                out.append(json.loads(line))
        return out


def attackers(root: Path, pki: Pki) -> dict[str, Path]:
    """Lab-issued identities: alice's lab (trusted as alice-lab) and a lab trusted under the admin's name."""
    lab = Lab.create(root / "alice-lab", "alice-lab")
    lab.trusted_by(pki.server_dir, as_name="alice-lab")
    fake = Lab.create(root / "fake-ops", "fake-ops")
    fake.trusted_by(pki.server_dir, as_name="operator")
    return {"lab-operator": lab.member(root / "m-op", "operator"), "lab-bob": lab.member(root / "m-bob", "bob"),
            "lab-noname": lab.member(root / "m-none", None), "anna": lab.member(root / "m-anna", "alice-lab/anna"),
            "fake-operator": fake.member(root / "m-fake", "operator")}


def point_all(members: dict[str, Path], alias: str, url: str, pki: Pki) -> None:
    for name, path in members.items():
        Lab(path, "fake-ops" if name == "fake-operator" else "alice-lab").point(path, alias, url, pki.server_ca_pem)


@pytest.fixture(scope="module")
def psik(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("names-psik")
    pki = make_pki(root, server="psik", users=("alice", "bob", "operator"))
    members = attackers(root, pki)
    me = getpass.getuser()
    cfg = root / "psik.json"
    cfg.write_text(json.dumps({"prefix": str(root / "jobs"), "admins": ["operator"], "accounts": {
        name: me for name in ("alice", "bob", "operator", "alice-lab/anna")}}))
    log = root / "psik-api.log"
    with psik_api(cfg, pki.server_dir, log) as url:
        pki.add_service_alias("psik", url)
        point_all(members, "psik", url, pki)
        yield Deployment(root, pki, members, log)


def test_lab_certificates_for_other_names_are_refused_by_psik_api(psik: Deployment) -> None:
    with PsikClient("psik", psik.dir("alice")) as alice, PsikClient("psik", psik.dir("bob")) as bob:
        alice_job = alice.submit({"name": "alices", "script": "echo alice-secret"}).jobid
        bob_job = bob.submit({"name": "bobs", "script": "echo bob-secret"}).jobid
    jobs_on_disk = len(list((psik.root / "jobs").iterdir()))
    cases = [("lab-operator", "GET", "/v1/jobs", LAB_OPERATOR),
             ("lab-bob", "GET", f"/v1/jobs/{bob_job}/logs", "certificate names 'bob', but its issuer"),
             ("lab-noname", "POST", "/v1/jobs", "certificate has no common name")]
    for who, method, path, why in cases:
        with tls_client("psik", psik.dir(who)) as http:
            r = http.request(method, path, json={"script": "cat /etc/shadow"} if method == "POST" else None)
        assert r.status_code == 403, (who, r.text)
        assert r.json()["detail"] == f"not authenticated: {why}" or r.json()["detail"].startswith(
            f"not authenticated: {why}")
        assert "bob-secret" not in r.text and "alice-secret" not in r.text
        line = wait_for(lambda w=why: [x for x in psik.refusals() if str(x["reason"]).startswith(w)], timeout=30,
                        what=f"the refusal of {who} in the log")[-1]
        assert line["trusted_as"] == "alice-lab" and line["path"] == path
    assert len(list((psik.root / "jobs").iterdir())) == jobs_on_disk, "nothing was created"
    with PsikClient("psik", psik.dir("operator")) as admin:
        seen = {j.jobid for j in admin.list(limit=10_000).jobs}
        assert {alice_job, bob_job} <= seen, "the real admin still sees everything"
        assert admin.get(bob_job).owner == "bob"


def test_a_lab_namespace_is_its_own_user(psik: Deployment) -> None:
    with PsikClient("psik", psik.dir("anna")) as anna, PsikClient("psik", psik.dir("alice")) as alice:
        mine = anna.submit({"script": "echo anna"})
        assert mine.owner == "alice-lab/anna"
        theirs = alice.submit({"script": "true"}).jobid
        assert [j.jobid for j in anna.list(limit=10_000).jobs] == [mine.jobid]
        with pytest.raises(Exception) as err:
            anna.get(theirs)
        assert getattr(err.value, "status", None) == 404


def test_a_ca_trusted_under_the_admins_name_grants_no_admin_rights(psik: Deployment) -> None:
    with PsikClient("psik", psik.dir("alice")) as alice:
        alice_job = alice.submit({"script": "true"}).jobid
    with PsikClient("psik", psik.dir("fake-operator")) as fake:
        assert fake.list(limit=10_000).jobs == [] or all(j.owner == "operator" for j in fake.list().jobs)
        with pytest.raises(Exception) as err:
            fake.get(alice_job)
        assert getattr(err.value, "status", None) == 404
    with PsikClient("psik", psik.dir("operator")) as admin:
        assert admin.get(alice_job).owner == "alice"


def test_lclstream_api_binds_names_and_admin_rights_to_trust_entries(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, server="lclstream-api", users=("alice", "operator"))
    members = attackers(tmp_path, pki)
    service = Service(tmp_path / "svc", pki, overrides={"admins": ["operator"]})
    try:
        service.start()  # the service picks its port: point the lab identities at it once it listens
        point_all(members, "lclstream", service.url, pki)
        with service.client("alice") as alice:
            view = alice.request(synthetic_config(events=8), {"idle_timeout": 120})
        with TransferClient("lclstream", members["lab-operator"]) as lab_operator, pytest.raises(TransferAPIError) as err:
            lab_operator.list()
        assert err.value.status == 403 and LAB_OPERATOR in str(err.value.detail)
        with TransferClient("lclstream", members["lab-noname"]) as nobody, pytest.raises(TransferAPIError) as err:
            nobody.request(synthetic_config(events=8))
        assert err.value.status == 403
        with TransferClient("lclstream", members["fake-operator"]) as fake:
            assert view.id not in [t.id for t in fake.list()]
            for call in (fake.status, fake.cancel):
                with pytest.raises(TransferAPIError) as err:
                    call(view.id)
                assert err.value.status == 404
        with service.client("operator") as admin:
            assert view.id in [t.id for t in admin.list()]
            assert admin.status(view.id).owner == "alice"
        log = service.log_text()
        assert '"event": "caller refused"' in log and "CN=operator" in log
    finally:
        try:
            with service.client("alice") as alice:
                alice.cancel(view.id)
        except (TransferAPIError, httpx.HTTPError, NameError):
            pass
        service.stop()
        service.cleanup_jobs()
