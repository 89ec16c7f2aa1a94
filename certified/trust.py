"""Trust lists: which CAs may sign the servers we call (by alias) and the clients that call us.

A client CA is trusted under a name (``add_client``); ``client_authorities`` lists them with the
server's own CA first, so a caller's certificate can be traced to the entry that vouched for it
(see ``certified.names`` for which names each entry may vouch for).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from pydantic import BaseModel, ConfigDict

from certified import ca, names
from certified.config import Layout, check_name, write_public
from certified.errors import CertifiedError

URL_SCHEMES = ("https", "tls+tcp", "wss")


class ServiceEntry(BaseModel):
    """A known server: where it is and which introduction (if any) we present to it."""

    model_config = ConfigDict(extra="forbid")

    url: str
    identity: str | None = None  # name of an intros/NAME.crt to present instead of id.crt


class TrustEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    subject: str
    fingerprint: str
    not_after: str


class ClientListing(TrustEntry):
    vouches_for: str


class ServiceListing(TrustEntry):
    url: str
    identity: str | None = None


class Listing(BaseModel):
    """Everything ``certified list`` shows."""

    model_config = ConfigDict(extra="forbid")

    config_dir: str
    name: str
    key_type: str
    hosts: list[str]
    id_fingerprint: str
    id_not_after: str
    services: list[ServiceListing]
    clients: list[ClientListing]
    intros: list[TrustEntry]


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES or not parts.hostname:
        raise CertifiedError(
            f"URL {url!r} is not usable: give scheme and host, e.g. https://host:8443 "
            f"(allowed schemes: {', '.join(URL_SCHEMES)})"
        )
    return url.rstrip("/")


def _ca_pem(pem: bytes, what: str) -> bytes:
    cert = ca.load_cert(pem, what)
    if not ca.is_ca(cert):
        raise CertifiedError(
            f"{what} is a leaf certificate for {ca.common_name(cert)!r}, not a CA: "
            "trust the CA that signed it (its CA.crt) instead"
        )
    return ca.cert_pem(cert)


def add_service(alias: str, url: str, ca_pem: bytes, config_dir: str | Path | None = None, *,
                identity: str | None = None) -> ServiceEntry:
    """Trust ``ca_pem`` to sign the server reachable at ``url`` under the name ``alias``."""
    check_name(alias, "service alias")
    layout = Layout(config_dir)
    layout.require_identity()
    entry = ServiceEntry(url=check_url(url), identity=identity)
    if identity is not None and not (layout.intros / f"{identity}.crt").exists():
        raise CertifiedError(f"identity {identity!r} has no introduction in {layout.intros}")
    pem = _ca_pem(ca_pem, f"certificate for service {alias!r}")
    layout.known_servers.mkdir(exist_ok=True)
    write_public(layout.known_servers / f"{alias}.crt", pem)
    write_public(layout.known_servers / f"{alias}.json", entry.model_dump_json(indent=2).encode())
    return entry


def set_service_url(alias: str, url: str, config_dir: str | Path | None = None) -> ServiceEntry:
    """Point an existing alias at a new URL (e.g. once a test server's port is known)."""
    entry = service(alias, config_dir).model_copy(update={"url": check_url(url)})
    path = Layout(config_dir).known_servers / f"{alias}.json"
    write_public(path, entry.model_dump_json(indent=2).encode())
    return entry


def add_client(name: str, ca_pem: bytes, config_dir: str | Path | None = None) -> None:
    """Trust ``ca_pem`` to sign clients that call our servers, for the name ``name`` and names inside
    it (``name/...``) only."""
    check_name(name, "client name")
    layout = Layout(config_dir)
    layout.require_identity()
    pem = _ca_pem(ca_pem, f"certificate for client {name!r}")
    layout.known_clients.mkdir(exist_ok=True)
    write_public(layout.known_clients / f"{name}.crt", pem)


def service(alias: str, config_dir: str | Path | None = None) -> ServiceEntry:
    layout = Layout(config_dir)
    path = layout.known_servers / f"{alias}.json"
    if not path.exists():
        known = ", ".join(services(config_dir)) or "none"
        raise CertifiedError(f"unknown service alias {alias!r} in {layout.root} (known: {known}); "
                             "add it with `certified add-service ALIAS URL CERT` or `certified add-intro`")
    return ServiceEntry.model_validate(json.loads(path.read_text()))


def services(config_dir: str | Path | None = None) -> dict[str, ServiceEntry]:
    layout = Layout(config_dir)
    if not layout.known_servers.is_dir():
        return {}
    return {p.stem: ServiceEntry.model_validate(json.loads(p.read_text()))
            for p in sorted(layout.known_servers.glob("*.json"))}


def _pems(paths: list[Path]) -> str:
    return "".join(p.read_text() for p in paths)


def server_cas_pem(config_dir: str | Path | None = None, alias: str | None = None) -> str:
    """CAs a client trusts for servers: this identity's own CA plus every (or one alias's) known server CA."""
    layout = Layout(config_dir)
    layout.require_identity()
    if alias is not None:
        service(alias, config_dir)
        return _pems([layout.ca_cert, layout.known_servers / f"{alias}.crt"])
    return _pems([layout.ca_cert, *sorted(layout.known_servers.glob("*.crt"))])


def client_cas_pem(config_dir: str | Path | None = None) -> str:
    """CAs a server trusts for clients: this identity's own CA (it signs introductions) plus known clients."""
    layout = Layout(config_dir)
    layout.require_identity()
    return _pems([layout.ca_cert, *sorted(layout.known_clients.glob("*.crt"))])


@dataclass(frozen=True)
class ClientAuthority:
    """A CA our servers accept client certificates from: our own (``trusted_as`` None) or a named entry."""

    trusted_as: str | None
    cert: x509.Certificate

    @property
    def label(self) -> str:
        return "own CA" if self.trusted_as is None else self.trusted_as

    def signed(self, leaf: x509.Certificate) -> bool:
        if leaf.issuer != self.cert.subject:
            return False
        try:
            leaf.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def client_authorities(config_dir: str | Path | None = None) -> list[ClientAuthority]:
    """Our own CA, then every known client CA under its trust name (the file name in known_clients)."""
    layout = Layout(config_dir)
    layout.require_identity()
    own = ClientAuthority(None, ca.load_cert(layout.ca_cert.read_bytes(), str(layout.ca_cert)))
    others = [ClientAuthority(p.stem, ca.load_cert(p.read_bytes(), str(p)))
              for p in sorted(layout.known_clients.glob("*.crt"))]
    return [own, *others]


def identity_files(config_dir: str | Path | None = None, intro: str | None = None) -> tuple[Path, Path]:
    """(certificate, key) to present: id.crt, or intros/INTRO.crt (same key) when given."""
    layout = Layout(config_dir)
    layout.require_identity()
    if intro is None:
        return layout.id_cert, layout.id_key
    path = layout.intros / f"{intro}.crt"
    if not path.exists():
        raise CertifiedError(f"no introduction {intro!r} in {layout.intros}")
    return path, layout.id_key


def _entry(name: str, path: Path) -> TrustEntry:
    cert = ca.load_cert(path.read_bytes(), str(path))
    return TrustEntry(name=name, subject=cert.subject.rfc4514_string(), fingerprint=ca.fingerprint(cert),
                      not_after=cert.not_valid_after_utc.isoformat())


def listing(config_dir: str | Path | None = None) -> Listing:
    from certified.identity import load

    layout = Layout(config_dir)
    ident = load(config_dir)
    own = _entry(ident.name, layout.id_cert)
    svcs = [ServiceListing(**_entry(alias, layout.known_servers / f"{alias}.crt").model_dump(),
                           url=entry.url, identity=entry.identity)
            for alias, entry in services(config_dir).items()]
    return Listing(
        config_dir=str(layout.root), name=ident.name, key_type=ident.key_type, hosts=ident.hosts,
        id_fingerprint=own.fingerprint, id_not_after=own.not_after, services=svcs,
        clients=[ClientListing(**_entry(p.stem, p).model_dump(), vouches_for=names.scope(p.stem))
                 for p in sorted(layout.known_clients.glob("*.crt"))],
        intros=[_entry(p.stem, p) for p in sorted(layout.intros.glob("*.crt"))],
    )
