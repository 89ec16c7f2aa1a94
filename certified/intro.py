"""Introductions: a CA signs another party's public key, and that party installs the result.

``introduce`` never sees a private key: it takes a CSR, a certificate or a public key. The JSON it
produces (an ``Introduction``) carries the signed certificate, the signer's CA certificate and the
service aliases the introduced party may use; ``add_intro`` checks and installs it.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from certified import ca, keys
from certified.config import Layout, check_name, write_public
from certified.errors import CertifiedError
from certified.identity import ca_signer, load
from certified.trust import add_service, check_url


class Introduction(BaseModel):
    """What ``certified introduce`` prints and ``certified add-intro`` installs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="common name given to the introduced identity")
    signer: str = Field(description="name of the identity whose CA signed it")
    certificate: str = Field(description="PEM certificate for the introduced public key")
    ca_certificate: str = Field(description="PEM certificate of the signer's CA")
    services: dict[str, str] = Field(default_factory=dict, description="service alias -> URL")


def introduce(public_pem: bytes, name: str, config_dir: str | Path | None = None, *, days: int = ca.LEAF_DAYS,
              services: dict[str, str] | None = None, hosts: list[str] | None = None) -> Introduction:
    """Sign ``public_pem`` (CSR, certificate or public key) as ``name`` with this identity's CA."""
    check_name(name)
    if days < 1:
        raise CertifiedError(f"--days must be at least 1, got {days}")
    for alias, url in (services or {}).items():
        check_name(alias, "service alias")
        check_url(url)
    public = keys.public_key_from_pem(public_pem, "the key to introduce")
    me = load(config_dir)
    ca_key, ca_cert = ca_signer(config_dir)
    cert = ca.issue(ca_key, ca_cert, public, name, hosts=hosts or (), days=days)
    return Introduction(name=name, signer=me.name, certificate=ca.cert_pem(cert).decode(),
                        ca_certificate=ca.cert_pem(ca_cert).decode(), services=dict(services or {}))


def parse_introduction(text: str, what: str = "introduction") -> Introduction:
    try:
        return Introduction.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise CertifiedError(f"{what} is not JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise CertifiedError(f"{what} is not a certified introduction: {problems}") from exc


def add_intro(intro: Introduction, config_dir: str | Path | None = None) -> list[str]:
    """Check an introduction is for this identity's key and signed by its CA; install it.

    Returns the service aliases installed (each trusts the signer's CA and presents this introduction).
    """
    check_name(intro.signer, "introduction signer")
    layout = Layout(config_dir)
    load(config_dir)
    cert = ca.load_cert(intro.certificate.encode(), "introduction certificate")
    ca_cert = ca.load_cert(intro.ca_certificate.encode(), "introduction CA certificate")
    own = ca.load_cert(layout.id_cert.read_bytes())
    if keys.public_pem(cert.public_key()) != keys.public_pem(own.public_key()):  # type: ignore[arg-type]
        raise CertifiedError(
            f"this introduction signs a different public key than the identity in {layout.root}; "
            "it was made for someone else (or for another configuration directory)"
        )
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertifiedError(f"the introduction's certificate was not signed by its CA certificate: {exc}") from exc
    layout.intros.mkdir(exist_ok=True)
    write_public(layout.intros / f"{intro.signer}.crt", intro.certificate.encode())
    for alias, url in intro.services.items():
        add_service(alias, url, intro.ca_certificate.encode(), config_dir, identity=intro.signer)
    return list(intro.services)
