"""``RunEventsHook``: an ``lclstream_kafka`` connection -> kafka-python consumers and producers.

The connection: ``host`` holds the bootstrap servers (``broker1:9092,broker2:9092``); extras
``security_protocol`` (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL), ``sasl_mechanism`` (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512) with ``login``/``password``, ``ca_cert``, ``client_cert``,
``client_key`` (file paths or PEM text), ``topic`` (default ``runs``), ``group_id`` (default
``airflow-lclstream``) and ``auto_offset_reset`` (where a new consumer group starts: ``latest``,
the default, or ``earliest``).

    hook = RunEventsHook("lclstream_kafka_default")
    hook.test_connection()                        # (True, "topic runs: 3 partitions ...")
    settings = hook.settings()                    # KafkaSettings: what triggers build consumers from
    consumer = settings.consumer(enable_auto_commit=False)
"""

from __future__ import annotations

import ssl
from typing import Any, ClassVar, Literal

from airflow.sdk import BaseHook
from kafka import KafkaConsumer, KafkaProducer
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from airflow_provider_lclstream.hooks.connection import ConnectionFieldError, Extras
from certified.material import ClientTLS

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
DEFAULT_TOPIC = "runs"
DEFAULT_GROUP = "airflow-lclstream"
CONNECT_TIMEOUT_S = 15.0


class KafkaSettings(BaseModel):
    """Everything needed to open a kafka-python client for one connection (no secrets in ``repr``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conn_id: str
    bootstrap_servers: list[str] = Field(min_length=1)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: SecretStr | None = None
    tls: ClientTLS | None = None
    topic: str = Field(DEFAULT_TOPIC, pattern=r"^[A-Za-z0-9._-]{1,249}$")
    group_id: str = Field(DEFAULT_GROUP, min_length=1, max_length=249)
    auto_offset_reset: Literal["latest", "earliest"] = "latest"

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, servers: list[str]) -> list[str]:
        for server in servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not HOST:PORT")
        return servers

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every kafka-python client of this connection takes."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers,
                                  "security_protocol": self.security_protocol,
                                  "bootstrap_timeout_ms": int(CONNECT_TIMEOUT_S * 1000)}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = self.ssl_context()
        if self.security_protocol.startswith("SASL_"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password.get_secret_value() if self.password else None
        return kwargs

    def ssl_context(self) -> ssl.SSLContext:
        return (self.tls or ClientTLS(minimum_version=ssl.TLSVersion.TLSv1_2)).context()

    def consumer(self, *, topic: str | None = None, group_id: str | None = "", **overrides: Any) -> KafkaConsumer:
        """A consumer subscribed to ``topic`` (default: the connection's) in ``group_id`` (default: the
        connection's; ``None``: no group, for ``assign``). Blocking: call it off the event loop."""
        kwargs = self.client_kwargs() | {"group_id": self.group_id if group_id == "" else group_id,
                                         "auto_offset_reset": self.auto_offset_reset} | overrides
        topics = [] if topic is None and kwargs["group_id"] is None else [topic or self.topic]
        return KafkaConsumer(*topics, **kwargs)

    def producer(self, **overrides: Any) -> KafkaProducer:
        return KafkaProducer(**(self.client_kwargs() | overrides))


def settings_from(conn: Any) -> KafkaSettings:
    """The :class:`KafkaSettings` of an Airflow connection; a bad field raises ConnectionFieldError."""
    extras = Extras(conn.conn_id, conn.conn_type or "", conn.extra_dejson)
    servers = extras.text("bootstrap_servers") or conn.host or ""
    if conn.port and servers and "," not in servers and ":" not in servers:
        servers = f"{servers}:{conn.port}"
    protocol = (extras.text("security_protocol") or "PLAINTEXT").upper()
    data: dict[str, Any] = {
        "conn_id": conn.conn_id,
        "bootstrap_servers": [s.strip() for s in servers.split(",") if s.strip()],
        "security_protocol": protocol,
        "topic": extras.text("topic") or DEFAULT_TOPIC,
        "group_id": extras.text("group_id") or DEFAULT_GROUP,
        "auto_offset_reset": extras.text("auto_offset_reset") or "latest",
    }
    if protocol.startswith("SASL_"):
        data |= {"sasl_mechanism": (extras.text("sasl_mechanism") or "PLAIN").upper(), "username": conn.login,
                 "password": conn.password}
        for field, value in (("login", conn.login), ("password", conn.password)):
            if not value:
                raise ConnectionFieldError(conn.conn_id, field, f"required with security_protocol {protocol}")
    if protocol in ("SSL", "SASL_SSL"):
        data["tls"] = extras.client_tls(minimum_version=ssl.TLSVersion.TLSv1_2)
    try:
        return KafkaSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = {"bootstrap_servers": "host"}.get(str(err["loc"][0]), ".".join(map(str, err["loc"])))
        raise ConnectionFieldError(conn.conn_id, field, err["msg"]) from None


class RunEventsHook(BaseHook):
    """Kafka clients for the facility's run events (kafka-python; blocking, so triggers use a thread).

    :param kafka_conn_id: the ``lclstream_kafka`` connection (default ``lclstream_kafka_default``).
    """

    conn_name_attr: ClassVar[str] = "kafka_conn_id"
    default_conn_name: ClassVar[str] = "lclstream_kafka_default"
    conn_type: ClassVar[str] = "lclstream_kafka"
    hook_name: ClassVar[str] = "LCLStream run events (Kafka)"

    def __init__(self, kafka_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.kafka_conn_id = kafka_conn_id

    def settings(self) -> KafkaSettings:
        return settings_from(self.get_connection(self.kafka_conn_id))

    async def asettings(self) -> KafkaSettings:
        """The settings, read without blocking the event loop (for triggers)."""
        return settings_from(await self.aget_connection(self.kafka_conn_id))

    def get_conn(self) -> KafkaConsumer:
        """A consumer of the connection's topic in its consumer group."""
        return self.settings().consumer()

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: are the broker and the topic reachable? Lists the topic's partitions."""
        try:
            settings = self.settings()
        except Exception as exc:
            return False, str(exc)
        servers = ",".join(settings.bootstrap_servers)
        try:
            consumer = settings.consumer(group_id=None, request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000))
        except Exception as exc:
            return False, f"broker {servers} not reachable: {exc!r}"
        try:
            consumer.bootstrap(timeout_ms=int(CONNECT_TIMEOUT_S * 1000))
            partitions = sorted(consumer.partitions_for_topic(settings.topic))
        except Exception as exc:
            return False, f"broker {servers} not reachable: {exc!r}"
        finally:
            consumer.close()
        if not partitions:
            return False, f"broker {servers} reachable, but topic {settings.topic!r} does not exist (or is not visible)"
        return True, f"topic {settings.topic!r}: {len(partitions)} partitions {partitions}"
