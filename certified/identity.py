"""Create and load this machine's identity: a CA of its own and a leaf certificate signed by it."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field

from certified import ca, keys
from certified.config import Layout, check_name, write_private, write_public
from certified.errors import CertifiedError
from certified.keys import KeyType, PrivateKey


class Identity(BaseModel):
    """What ``identity.json`` records about the identity in a configuration directory."""

    model_config = ConfigDict(extra="forbid")

    name: str
    org: str | None = None
    key_type: KeyType = "ed25519"
    hosts: list[str] = Field(default_factory=list)


def default_hosts() -> list[str]:
    hosts = ["localhost", "127.0.0.1", "::1"]
    hostname = socket.gethostname()
    if hostname and hostname not in hosts:
        hosts.append(hostname)
    return hosts


def init(name: str, config_dir: str | Path | None = None, *, org: str | None = None,
         key_type: KeyType = "ed25519", hosts: list[str] | None = None, days: int = ca.LEAF_DAYS) -> Identity:
    """Create CA.key/CA.crt and id.key/id.crt for ``name``; refuses to overwrite an existing identity."""
    check_name(name)
    if key_type not in keys.KEY_TYPES:
        raise CertifiedError(f"key type {key_type!r} is not supported; choose one of: {', '.join(keys.KEY_TYPES)}")
    layout = Layout(config_dir)
    if layout.identity_json.exists() or layout.ca_key.exists() or layout.id_key.exists():
        raise CertifiedError(f"{layout.root} already holds an identity; choose another directory "
                             "(--config or $CERTIFIED_CONFIG) or remove it first")
    layout.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(layout.root, 0o700)
    for sub in (layout.known_servers, layout.known_clients, layout.intros):
        sub.mkdir(exist_ok=True, mode=0o755)
    identity = Identity(name=name, org=org, key_type=key_type, hosts=hosts if hosts is not None else default_hosts())

    ca_key = keys.generate(key_type)
    ca_cert = ca.make_ca(ca_key, name, org)
    id_key = keys.generate(key_type)
    id_cert = ca.issue(ca_key, ca_cert, id_key.public_key(), name, org=org, hosts=identity.hosts, days=days)

    write_private(layout.ca_key, keys.private_pem(ca_key))
    write_private(layout.id_key, keys.private_pem(id_key))
    write_public(layout.ca_cert, ca.cert_pem(ca_cert))
    write_public(layout.id_cert, ca.cert_pem(id_cert))
    write_public(layout.identity_json, identity.model_dump_json(indent=2).encode())
    return identity


def load(config_dir: str | Path | None = None) -> Identity:
    layout = Layout(config_dir)
    layout.require_identity()
    try:
        return Identity.model_validate(json.loads(layout.identity_json.read_text()))
    except ValueError as exc:
        raise CertifiedError(f"{layout.identity_json} is damaged: {exc}") from exc


def ca_signer(config_dir: str | Path | None = None) -> tuple[PrivateKey, x509.Certificate]:
    """This identity's CA key and certificate (for signing introductions)."""
    layout = Layout(config_dir)
    layout.require_identity()
    return keys.load_private(layout.ca_key.read_bytes()), ca.load_cert(layout.ca_cert.read_bytes())


def public_key_pem(config_dir: str | Path | None = None) -> bytes:
    """This identity's public key, the thing to hand to someone who will introduce you."""
    layout = Layout(config_dir)
    layout.require_identity()
    return keys.public_pem(ca.load_cert(layout.id_cert.read_bytes()).public_key())  # type: ignore[arg-type]
