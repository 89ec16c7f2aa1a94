"""Names bound to their issuers: which names a trust entry vouches for, checked on a real ``certified serve``.

The server's own CA vouches for any name it signed; a lab CA trusted as ``alice-lab`` only for
``alice-lab`` and ``alice-lab/...``. Anything else gets 403 before the app sees it, with a log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from certified import http
from certified.names import refusal
from tests.certified.procs import Served, certified_serve, cli, wait_for
from tests.fixtures.labs import Lab
from tests.fixtures.pki import Pki, make_pki


@pytest.mark.parametrize(("trusted_as", "name", "ok"), [
    (None, "operator", True), (None, "alice-lab/anna", True), (None, None, False), (None, "", False),
    ("alice-lab", "alice-lab", True), ("alice-lab", "alice-lab/anna", True), ("alice-lab", "alice-lab/g1/anna", True),
    ("alice-lab", "operator", False), ("alice-lab", "bob", False), ("alice-lab", "alice-labx", False),
    ("alice-lab", "alice-lab/", False), ("alice-lab", "alice-lab/../operator", False),
    ("alice-lab", "alice-lab//x", False), ("alice-lab", "x/alice-lab", False), ("alice-lab", None, False),
])
def test_which_names_an_entry_vouches_for(trusted_as: str | None, name: str | None, ok: bool) -> None:
    assert (refusal(trusted_as, name) is None) is ok


@pytest.fixture(scope="module")
def lab_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pki, Served, dict[str, Path]]]:
    root = tmp_path_factory.mktemp("names")
    pki = make_pki(root, server="api", users=("alice",))
    lab = Lab.create(root / "alice-lab", "alice-lab")
    lab.trusted_by(pki.server_dir, as_name="alice-lab")
    members = {"anna": lab.member(root / "anna", "alice-lab/anna"), "lab": lab.member(root / "lab", "alice-lab"),
               "operator": lab.member(root / "op", "operator"), "bob": lab.member(root / "bob", "bob"),
               "noname": lab.member(root / "noname", None), "alice": lab.member(root / "alice2", "alice")}
    with certified_serve(pki.server_dir, "tests.certified.app:app", root) as served:
        pki.add_service_alias("api", served.url)
        for path in members.values():
            lab.point(path, "api", served.url, pki.server_ca_pem)
        yield pki, served, members


def test_lab_ca_vouches_for_its_own_names(lab_served: tuple[Pki, Served, dict[str, Path]]) -> None:
    _pki, _served, members = lab_served
    for member, name in (("anna", "alice-lab/anna"), ("lab", "alice-lab")):
        with http.client("api", members[member]) as c:
            r = c.get("/whoami")
        assert r.status_code == 200
        assert r.json() == {"caller": name, "issuer": "alice-lab CA", "trusted_as": "alice-lab", "admin": False}


@pytest.mark.parametrize(("member", "why"), [
    ("operator", "certificate names 'operator', but its issuer, trusted as 'alice-lab', may vouch only for "
                 "'alice-lab' or 'alice-lab/...'"),
    ("bob", "certificate names 'bob', but its issuer"),
    ("alice", "certificate names 'alice', but its issuer"),  # the own CA's alice is someone else
    ("noname", "certificate has no common name, so it names nobody"),
])
def test_other_names_from_a_lab_ca_are_refused_and_logged(lab_served: tuple[Pki, Served, dict[str, Path]],
                                                          member: str, why: str) -> None:
    _pki, served, members = lab_served
    before = len([x for x in served.access_lines() if x["path"] == "/hook"])
    with http.client("api", members[member]) as c:
        r = c.get("/whoami")
        hooked = c.post("/hook", content=b"{}")
    assert r.status_code == 403 and hooked.status_code == 403
    assert r.json()["detail"].startswith("not authenticated: " + why)
    refused = wait_for(lambda: [x for x in served.json_lines() if x.get("event") == "caller refused"
                                and str(x.get("reason", "")).startswith(why)], "the refusal's log line")
    assert refused[0]["trusted_as"] == "alice-lab" and refused[0]["issuer"] == "alice-lab CA"
    lines = wait_for(lambda: [x for x in served.access_lines() if x["path"] == "/hook"][before:], "access line")
    assert lines[-1]["status"] == 403 and lines[-1]["caller"] is None


def test_own_ca_names_and_the_admin_check(lab_served: tuple[Pki, Served, dict[str, Path]]) -> None:
    pki, _served, _members = lab_served
    with http.client("api", pki.user_dir("alice")) as c:
        assert c.get("/whoami").json() == {"caller": "alice", "issuer": "api CA", "trusted_as": "own CA",
                                            "admin": True}


def test_certified_list_says_what_each_client_ca_vouches_for(lab_served: tuple[Pki, Served, dict[str, Path]]) -> None:
    pki, _served, _members = lab_served
    done = cli("list", "--config", str(pki.server_dir))
    assert done.returncode == 0, done.stderr
    assert "vouches for 'alice-lab' or 'alice-lab/...'" in done.stdout
