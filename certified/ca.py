"""Certificate authority operations: self-signed CA certificates and leaf certificates it issues."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certified.errors import CertifiedError
from certified.keys import PrivateKey, PublicKey, signing_hash

CA_DAYS = 3650
LEAF_DAYS = 365
_SKEW = dt.timedelta(minutes=5)  # tolerate small clock differences between machines


def _subject(name: str, org: str | None, unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_ca(key: PrivateKey, name: str, org: str | None = None, days: int = CA_DAYS) -> x509.Certificate:
    """A self-signed CA certificate that may sign leaf certificates only (path length 0)."""
    now = dt.datetime.now(dt.UTC)
    subject = _subject(f"{name} CA", org)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, signing_hash(key))  # type: ignore[arg-type]


def issue(ca_key: PrivateKey, ca_cert: x509.Certificate, public_key: PublicKey, name: str, *,
          org: str | None = None, unit: str | None = None, hosts: Iterable[str] = (), days: int = LEAF_DAYS,
          not_before: dt.datetime | None = None) -> x509.Certificate:
    """Sign ``public_key`` as the identity ``name`` (the certificate's common name).

    ``unit`` becomes the subject's organizational unit (data streams use it for the peer's role).
    ``hosts`` become subject alternative names (DNS names or IP addresses) so the identity can also
    serve TLS under those names. ``not_before`` defaults to now; with ``days`` it bounds validity.
    """
    if days < 1 and not_before is None:
        raise CertifiedError(f"days must be at least 1, got {days}")
    start = not_before or (dt.datetime.now(dt.UTC) - _SKEW)
    end = start + dt.timedelta(days=days)
    ca_end = ca_cert.not_valid_after_utc
    if end > ca_end:
        end = ca_end  # a certificate cannot outlive the CA that vouches for it
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(name, org, unit))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    names = [_general_name(h) for h in hosts]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, signing_hash(ca_key))  # type: ignore[arg-type]


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(pem: bytes, what: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertifiedError(f"{what} is not a PEM x.509 certificate: {exc}") from exc


def common_name(cert: x509.Certificate, issuer: bool = False) -> str:
    name = cert.issuer if issuer else cert.subject
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
