"""Data streams: a pynng Pair over tls+tcp:// with p256 identities from this PKI."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pynng
import pytest

from certified.errors import CertifiedError
from certified.nng import tls_config
from tests.certified.nng_sender import send_messages
from tests.fixtures.net import free_port
from tests.fixtures.pki import make_identity, make_pki


def test_pair_over_tls_with_p256_identities(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, server="buffer", users=("consumer",), key_type="p256")
    port = free_port()
    url = f"tls+tcp://127.0.0.1:{port}"
    pki.add_service_alias("buffer", f"tls+tcp://localhost:{port}")  # certificate names localhost
    with pynng.Pair0(tls_config=tls_config(pki.server_dir, server=True), recv_timeout=30_000,
                     send_timeout=30_000) as pair:
        pair.listen(url)
        sender = multiprocessing.get_context("spawn").Process(
            target=send_messages, args=(str(pki.user_dir("consumer")), url, "buffer", 5))
        sender.start()
        try:
            got = [pair.recv() for _ in range(5)]
            pair.send(b"ack")
            sender.join(timeout=60)
            assert sender.exitcode == 0
        finally:
            if sender.is_alive():
                sender.kill()
                sender.join(timeout=10)
        assert got == [f"message {i}".encode() for i in range(5)]

        # a foreign CA's identity is refused: nothing arrives
        pair.recv_timeout = 1500
        with pynng.Pair0(tls_config=tls_config(pki.user_dir("mallory"), server=False, alias="buffer"),
                         send_timeout=1500) as intruder:
            try:
                intruder.dial(url, block=True)
                intruder.send(b"intrusion")
            except pynng.NNGException:
                pass
            with pytest.raises(pynng.Timeout):
                pair.recv()


def test_ed25519_identity_is_explained(tmp_path: Path) -> None:
    where = make_identity(tmp_path / "ed", "ed")
    with pytest.raises(CertifiedError, match="uses ed25519 keys.*--key-type p256"):
        tls_config(where, server=True)
