"""Reading an Airflow connection's fields the same way for every hook of this provider.

Connections come from the UI form (``conn-fields``), from ``AIRFLOW_CONN_*`` JSON, or from a secrets
backend; extras may therefore be stored under their plain name (``client_key``) or with the form's
prefix (``extra__lclstream__client_key``). TLS material is a file path on the workers or the PEM text
itself, so a connection works from a secrets backend with no files on the worker.

Bad fields raise :class:`ConnectionFieldError` naming the connection and the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationError

from certified.material import ClientTLS

# The TLS fields every connection type of this provider offers (conn-fields in get_provider_info).
TLS_FIELDS = ("client_cert", "client_key", "ca_cert")


class ConnectionFieldError(ValueError):
    """A connection field has a value this provider cannot use; the message names the field."""

    def __init__(self, conn_id: str, field: str, message: str) -> None:
        super().__init__(f"connection {conn_id!r}, field {field}: {message}")
        self.conn_id = conn_id
        self.field = field


class Extras:
    """The extra fields of one connection, read under their plain or their form-prefixed names."""

    def __init__(self, conn_id: str, conn_type: str, extras: dict[str, Any]) -> None:
        self.conn_id = conn_id
        self.prefix = f"extra__{conn_type}__"
        self.extras = extras

    def get(self, name: str, default: Any = None) -> Any:
        for key in (name, self.prefix + name):
            value = self.extras.get(key)
            if value not in (None, ""):
                return value
        return default

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.get(name, default)
        if value is not None and not isinstance(value, str):
            raise ConnectionFieldError(self.conn_id, name, f"must be text, got {type(value).__name__}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise ConnectionFieldError(self.conn_id, name, f"must be true or false, got {value!r}")

    def number(self, name: str, default: float) -> float:
        value = self.get(name, default)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConnectionFieldError(self.conn_id, name, f"must be a number, got {value!r}") from None
        if number <= 0:
            raise ConnectionFieldError(self.conn_id, name, f"must be positive, got {value!r}")
        return number

    def client_tls(self, **settings: Any) -> ClientTLS | None:
        """The connection's TLS material (paths or PEM text), or None when it gives none."""
        cert, key, ca = (self.text(name) for name in TLS_FIELDS)
        if cert is None and key is None and ca is None:
            return None
        if (cert is None) != (key is None):
            missing = "client_key" if key is None else "client_cert"
            raise ConnectionFieldError(self.conn_id, missing, "give both client_cert and client_key, or neither")
        try:
            return ClientTLS(cert=cert, key=SecretStr(key) if key else None, ca=ca,
                             check_hostname=self.flag("check_hostname", True), **settings)
        except ValidationError as exc:
            raise ConnectionFieldError(self.conn_id, ".".join(map(str, exc.errors()[0]["loc"])),
                                       exc.errors()[0]["msg"]) from None
