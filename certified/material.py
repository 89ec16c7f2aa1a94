"""Mutual-TLS client material given explicitly, as file paths or PEM text, instead of a certified folder.

A client built from an identity folder uses ``certified.tls.client_context``. A client built from
configuration that lives elsewhere (an Airflow connection, a secrets backend, environment variables)
has the certificate, key and CA as file paths or as PEM text; :class:`ClientTLS` turns either into
the same kind of ``ssl.SSLContext``. Python's ``ssl`` loads a certificate and key only from files, so
PEM text is written to a fresh private folder (mode 0700, files 0600), loaded, and removed at once;
the key never stays on disk and is never part of a ``repr`` or a log line.

    tls = ClientTLS(cert=cert_pem_or_path, key=key_pem_or_path, ca=ca_pem_or_path)
    ctx = tls.context()                                # verifies the server and its host name
    httpx.Client(base_url=url, verify=ctx)             # see certified.http.client_for
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from certified.errors import CertifiedError

PEM_MARK = "-----BEGIN "


def is_pem(value: str) -> bool:
    """True when ``value`` is PEM text rather than a file path."""
    return value.lstrip().startswith(PEM_MARK)


def read_pem(value: str, what: str) -> str:
    """PEM text from PEM text or from the file a path names; a clear error naming ``what`` otherwise."""
    if is_pem(value):
        return value.strip() + "\n"
    path = Path(value).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise CertifiedError(f"{what}: cannot read {str(path)!r} ({exc.strerror or exc}); give a PEM file "
                             "path or the PEM text itself") from None
    if PEM_MARK not in text:
        raise CertifiedError(f"{what}: {str(path)!r} holds no PEM block (-----BEGIN ...)")
    return text


class ClientTLS(BaseModel):
    """A client certificate, its private key and the CA certificates trusted for the server.

    Each of ``cert``, ``key`` and ``ca`` is a file path or PEM text. ``cert`` and ``key`` may be left
    out together (server-authenticated TLS only, e.g. a Kafka broker with SASL).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert: str | None = Field(None, description="client certificate: a PEM file path or PEM text")
    key: SecretStr | None = Field(None, description="client private key: a PEM file path or PEM text (secret)")
    ca: str | None = Field(None, description="CA certificate(s) trusted for the server; none: the system's")
    check_hostname: bool = Field(True, description="verify that the server's certificate names its host")
    minimum_version: ssl.TLSVersion = Field(ssl.TLSVersion.TLSv1_3, description="lowest TLS version accepted")

    @field_validator("cert", "ca")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None

    @field_validator("key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    def context(self) -> ssl.SSLContext:
        """A client ``SSLContext``: presents the certificate (if any), verifies the server."""
        if (self.cert is None) != (self.key is None):
            missing = "key" if self.key is None else "cert"
            raise CertifiedError(f"client TLS: {missing} is missing (give both the certificate and its key, "
                                 "or neither)")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = self.minimum_version
        if self.ca is None:
            ctx.load_default_certs()
        else:
            try:
                ctx.load_verify_locations(cadata=read_pem(self.ca, "ca"))
            except ssl.SSLError as exc:
                raise CertifiedError(f"ca: not a usable CA certificate ({exc.reason or exc})") from None
        ctx.check_hostname = self.check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
        if self.cert is not None and self.key is not None:
            _load_chain(ctx, self.cert, self.key.get_secret_value())
        return ctx


def _load_chain(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    """Load a certificate and key given as paths or PEM; PEM goes through a private folder removed at once."""
    if not is_pem(cert) and not is_pem(key):
        paths = [Path(cert).expanduser(), Path(key).expanduser()]
        for path, what in zip(paths, ("cert", "key"), strict=True):
            if not path.is_file():
                raise CertifiedError(f"{what}: no file {str(path)!r}; give a PEM file path or the PEM text itself")
        _load(ctx, str(paths[0]), str(paths[1]))
        return
    folder = tempfile.mkdtemp(prefix="certified-tls-")  # mode 0700
    try:
        files = []
        for name, value, what in (("client.crt", cert, "cert"), ("client.key", key, "key")):
            path = os.path.join(folder, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(read_pem(value, what))
            files.append(path)
        _load(ctx, files[0], files[1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _load(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise CertifiedError(f"cert/key: not a matching PEM certificate and private key ({exc.reason or exc})") from None
