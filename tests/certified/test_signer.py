"""certified-signer: the real daemon over a real UNIX socket names the caller from SO_PEERCRED."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from certified import ca
from certified.config import Layout
from certified.identity import public_key_pem
from certified.signer import request_certificate
from tests.certified.procs import BIN, REPO, cli, stop, wait_for
from tests.fixtures.pki import make_identity


@pytest.fixture
def signer(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    short = Path(tempfile.mkdtemp(prefix="csig", dir="/tmp"))  # UNIX socket paths must be short
    sock, db = short / "signer.sock", tmp_path / "signer.sqlite"
    config = make_identity(tmp_path / "login", "login-node")
    log = tmp_path / "signer.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "certified-signer"), "serve", "--socket", str(sock), "--db", str(db),
                                 "--config", str(config), "--service", "psik=https://127.0.0.1:8443"],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: sock.exists() and '"listening"' in log.read_text(), "signer listening", proc=proc)
        yield sock, db, config
    finally:
        stop(proc)
        shutil.rmtree(short, ignore_errors=True)
    assert proc.returncode == 0, log.read_text()


def test_signer_names_the_calling_user_and_records_it(signer: tuple[Path, Path, Path], tmp_path: Path) -> None:
    sock, db, config = signer
    login = pwd.getpwuid(os.getuid()).pw_name
    user = make_identity(tmp_path / "user", "whatever-i-claim")
    done = cli("request", "--socket", str(sock), "--install", prog="certified-signer",
               env=dict(os.environ, CERTIFIED_CONFIG=str(user)))
    assert done.returncode == 0, done.stderr
    cert = ca.load_cert((Layout(user).intros / "login-node.crt").read_bytes())
    assert ca.common_name(cert) == login  # the kernel's answer, not the name the user chose
    assert ca.common_name(cert, issuer=True) == "login-node CA"
    assert (Layout(user).known_servers / "psik.json").exists()

    second = request_certificate(sock, public_key_pem(user))
    assert second.name == login

    done = cli("list", "--db", str(db), "--json", prog="certified-signer")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["name"] for r in rows] == [login, login]
    assert all(r["uid"] == os.getuid() for r in rows)
    second_serial = format(ca.load_cert(second.certificate.encode()).serial_number, "x")
    assert {r["serial"] for r in rows} == {format(cert.serial_number, "x"), second_serial}
    assert login in cli("list", "--db", str(db), prog="certified-signer").stdout


def test_signer_refuses_garbage_and_keeps_serving(signer: tuple[Path, Path, Path], tmp_path: Path) -> None:
    sock, _db, _config = signer
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(20)
        conn.connect(str(sock))
        conn.sendall(b'{"public_key": "-----BEGIN PRIVATE KEY-----\\nxx"}\n')
        reply = json.loads(conn.makefile("rb").readline())
    assert reply["ok"] is False and "PRIVATE key" in reply["error"]
    user = make_identity(tmp_path / "user", "u")
    assert request_certificate(sock, public_key_pem(user)).name == pwd.getpwuid(os.getuid()).pw_name
