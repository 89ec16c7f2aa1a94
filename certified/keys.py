"""Key pairs and PEM parsing: ed25519 by default, NIST P-256 where a peer (nng's mbedTLS) needs it."""

from __future__ import annotations

from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from certified.errors import CertifiedError

KeyType = Literal["ed25519", "p256"]
KEY_TYPES: tuple[str, ...] = ("ed25519", "p256")
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def generate(key_type: KeyType) -> PrivateKey:
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise CertifiedError(f"key type {key_type!r} is not supported; choose one of: {', '.join(KEY_TYPES)}")


def key_type_of(key: PrivateKey | PublicKey) -> KeyType:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return "p256"
    raise CertifiedError(f"unsupported key {type(key).__name__}; certified uses ed25519 or p256 keys")


def signing_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    """The hash to pass to ``CertificateBuilder.sign``: ed25519 signs without a separate hash."""
    return None if key_type_of(key) == "ed25519" else hashes.SHA256()


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    key_type_of(key)  # type: ignore[arg-type]
    return key  # type: ignore[return-value]


def public_key_from_pem(pem: bytes, what: str = "input") -> PublicKey:
    """Accept a CSR (its signature is checked), a certificate, or a bare public key; refuse private keys."""
    text = pem.strip()
    if b"PRIVATE KEY-----" in text:
        raise CertifiedError(
            f"{what} is a PRIVATE key: private keys never leave their machine; "
            "send the public key, the certificate (id.crt) or a CSR instead"
        )
    try:
        if b"-----BEGIN CERTIFICATE REQUEST-----" in text:
            csr = x509.load_pem_x509_csr(text)
            if not csr.is_signature_valid:
                raise CertifiedError(f"{what}: the CSR's self-signature does not match its public key")
            key = csr.public_key()
        elif b"-----BEGIN CERTIFICATE-----" in text:
            key = x509.load_pem_x509_certificate(text).public_key()
        elif b"-----BEGIN PUBLIC KEY-----" in text:
            key = serialization.load_pem_public_key(text)
        else:
            raise CertifiedError(
                f"{what} is not a PEM CSR, certificate or public key "
                "(expected a '-----BEGIN CERTIFICATE REQUEST/CERTIFICATE/PUBLIC KEY-----' block)"
            )
    except (ValueError, InvalidSignature) as exc:
        raise CertifiedError(f"{what} could not be parsed as PEM: {exc}") from exc
    key_type_of(key)  # type: ignore[arg-type]
    return key  # type: ignore[return-value]
