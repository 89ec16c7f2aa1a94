"""Data-path credentials of transfers: a CA made for each transfer, its jobs' files, readers' certificates.

At start a transfer gets its own CA (``certified.stream_ca``). Its buffer's certificate and key, its
producers' certificate and key, and the CA certificate go into the transfer's folder, which its jobs
read; the CA's private key goes into the service's own ``STATE_DIR/data-ca/`` (0700, files 0600), a
folder no job is given, and is deleted when the transfer ends. A consumer certificate is made on
request for each caller allowed to read (``GET /v1/transfers/{id}/credentials``), with a key made
for it, both returned over the mutual-TLS control plane and never written to disk here.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from certified.config import replace_file
from certified.stream_ca import Issued, StreamCA

CA_CERT, BUFFER_CERT, BUFFER_KEY = "ca.crt", "buffer.crt", "buffer.key"
PRODUCER_CERT, PRODUCER_KEY = "producer.crt", "producer.key"


@dataclass(frozen=True)
class JobFiles:
    """Paths of a transfer's TLS files, as its jobs see them."""

    ca: Path
    buffer_cert: Path
    buffer_key: Path
    producer_cert: Path
    producer_key: Path

    @classmethod
    def under(cls, folder: Path) -> JobFiles:
        return cls(folder / CA_CERT, folder / BUFFER_CERT, folder / BUFFER_KEY, folder / PRODUCER_CERT,
                   folder / PRODUCER_KEY)


class TransferCAs:
    """The per-transfer CAs of one service, keyed by transfer id."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "data-ca"

    def _paths(self, transfer_id: str) -> tuple[Path, Path]:
        return self.root / f"{transfer_id}.crt", self.root / f"{transfer_id}.key"

    def create(self, transfer_id: str, folder: Path, hosts: list[str]) -> JobFiles:
        """Make the transfer's CA and write the jobs' files into ``folder``; returns their paths."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        ca = StreamCA.create(f"lclstream transfer {transfer_id}")
        cert_path, key_path = self._paths(transfer_id)
        replace_file(key_path, ca.key_pem, 0o600)
        replace_file(cert_path, ca.cert_pem, 0o644)
        files = JobFiles.under(folder)
        replace_file(files.ca, ca.cert_pem, 0o644)
        buffer = ca.issue("buffer", "buffer", hosts=hosts)
        replace_file(files.buffer_cert, buffer.cert_pem, 0o644)
        replace_file(files.buffer_key, buffer.key_pem, 0o600)
        producer = ca.issue(f"producers of {transfer_id}", "producer")
        replace_file(files.producer_cert, producer.cert_pem, 0o644)
        replace_file(files.producer_key, producer.key_pem, 0o600)
        return files

    def ca_pem(self, transfer_id: str) -> bytes:
        return self._paths(transfer_id)[0].read_bytes()

    def consumer(self, transfer_id: str, caller: str) -> Issued:
        """A new consumer certificate and key for ``caller``; FileNotFoundError once the CA is gone."""
        cert_path, key_path = self._paths(transfer_id)
        ca = StreamCA.load(cert_path.read_bytes(), key_path.read_bytes())
        return ca.issue(caller, "consumer")

    def forget(self, transfer_id: str) -> None:
        """Delete the CA's key (and certificate): no certificate can be made for this transfer any more."""
        for path in self._paths(transfer_id):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
