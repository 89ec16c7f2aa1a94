"""Where a certified identity lives on disk, and the names of the files inside it.

Layout of a configuration directory (created by ``certified init``)::

    identity.json            name, organisation, key type, host names of this identity
    CA.key  (0600)  CA.crt   this identity's own certificate authority
    id.key  (0600)  id.crt   this identity, signed by its own CA
    known_servers/ALIAS.crt  CA certificate trusted to sign the server behind ALIAS
    known_servers/ALIAS.json {"url": ..., "identity": intro name or null}
    known_clients/NAME.crt   CA certificates trusted to sign client identities
    intros/SIGNER.crt        this identity's public key signed by SIGNER's CA (from ``add-intro``)

Private keys are created with mode 0600 and never leave the directory.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from certified.errors import CertifiedError

ENV_VAR = "CERTIFIED_CONFIG"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def config_dir(explicit: str | Path | None = None) -> Path:
    """The configuration directory: ``explicit``, else $CERTIFIED_CONFIG, else $VIRTUAL_ENV/etc/certified,
    else ~/.config/certified. The directory is not created here."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    if os.environ.get("VIRTUAL_ENV"):
        return Path(os.environ["VIRTUAL_ENV"]) / "etc" / "certified"
    return Path.home() / ".config" / "certified"


def check_name(name: str, what: str = "name") -> str:
    """Names become file names: letters, digits, '.', '_', '@', '-', at most 64 characters."""
    if not NAME_PATTERN.match(name):
        raise CertifiedError(
            f"{what} {name!r} is not allowed: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


class Layout:
    """Paths inside one configuration directory."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = config_dir(root)

    @property
    def identity_json(self) -> Path:
        return self.root / "identity.json"

    @property
    def ca_key(self) -> Path:
        return self.root / "CA.key"

    @property
    def ca_cert(self) -> Path:
        return self.root / "CA.crt"

    @property
    def id_key(self) -> Path:
        return self.root / "id.key"

    @property
    def id_cert(self) -> Path:
        return self.root / "id.crt"

    @property
    def known_servers(self) -> Path:
        return self.root / "known_servers"

    @property
    def known_clients(self) -> Path:
        return self.root / "known_clients"

    @property
    def intros(self) -> Path:
        return self.root / "intros"

    def require_identity(self) -> None:
        if not self.identity_json.exists():
            raise CertifiedError(
                f"no certified identity in {self.root}: run `certified init NAME` first "
                f"(or point ${ENV_VAR} at an existing configuration directory)"
            )


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (refusing to overwrite) and write ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` atomically (new or replaced), with ``mode`` from the start: a key written with 0600 is
    never readable by others, even briefly."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    """Write a public file atomically (certificates, JSON records)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
