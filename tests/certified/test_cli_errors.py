"""Bad input: exit status 2, one clear line on stderr, no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.certified.procs import cli


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("cfg") / "c"
    assert cli("init", "svc", env=dict(os.environ, CERTIFIED_CONFIG=str(where))).returncode == 0
    return where


CASES = [
    (["init", "svc"], "already holds an identity"),
    (["init", "bad name!"], "'bad name!' is not allowed"),
    (["init", "x", "--key-type", "rsa"], "invalid choice: 'rsa'"),
    (["add-service", "api", "http://h:1", "CA.crt"], "allowed schemes: https"),
    (["add-service", "api", "https://h:1", "missing.crt"], "does not exist"),
    (["add-service", "api", "https://h:1", "id.crt"], "is a leaf certificate"),
    (["add-intro", "identity.json"], "not a certified introduction"),
    (["introduce", "id.crt", "--name", "x", "--days", "0"], "--days must be at least 1"),
    (["introduce", "id.crt", "--name", "x", "--service", "nourl"], "must look like ALIAS=URL"),
    (["serve", "tests.certified.app:app", "http://127.0.0.1:1"], "must look like https://HOST:PORT"),
    (["serve", "no.such.module:app", "https://127.0.0.1:0"], "cannot load app"),
    (["message", "api/x", "--json", "missing.json"], "does not exist"),
    (["message", "api/x", "-X", "FETCH", "data"], "not one of GET"),
    (["bogus"], "invalid choice: 'bogus'"),
]


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_bad_input_exits_2_with_one_line(cfg: Path, argv: list[str], expected: str) -> None:
    argv = [str(cfg / a) if a in ("CA.crt", "id.crt", "identity.json") else a for a in argv]
    done = cli(*argv, env=dict(os.environ, CERTIFIED_CONFIG=str(cfg)))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_missing_identity_is_explained(tmp_path: Path) -> None:
    done = cli("list", env=dict(os.environ, CERTIFIED_CONFIG=str(tmp_path / "none")))
    assert done.returncode == 2 and "run `certified init NAME` first" in done.stderr


SIGNER_CASES = [
    (["request", "--socket", "/nonexistent/signer.sock"], "cannot talk to the signer"),
    (["serve", "--socket", "/tmp/x.sock", "--config", "/nonexistent/cfg"], "run `certified init NAME` first"),
    (["serve"], "the following arguments are required: --socket"),
]


@pytest.mark.parametrize(("argv", "expected"), SIGNER_CASES, ids=[" ".join(c[0][:1]) + str(i)
                                                                   for i, c in enumerate(SIGNER_CASES)])
def test_signer_bad_input_exits_2(cfg: Path, argv: list[str], expected: str) -> None:
    done = cli(*argv, prog="certified-signer", env=dict(os.environ, CERTIFIED_CONFIG=str(cfg)))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
