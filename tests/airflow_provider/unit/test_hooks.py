"""Connections -> service clients: URL forms, TLS material as paths or PEM text, field-named errors."""

from __future__ import annotations

import json
import ssl
import tempfile
from pathlib import Path

import pytest
from airflow.sdk import Connection

from airflow_provider_lclstream.hooks.connection import ConnectionFieldError
from airflow_provider_lclstream.hooks.run_events import settings_from
from airflow_provider_lclstream.hooks.service import endpoint_from
from certified.errors import CertifiedError
from tests.airflow_provider.conftest import as_pem_text, user_tls
from tests.fixtures.pki import Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path, server="lclstream-api", users=("alice",))


def conn(conn_type: str, **fields: object) -> Connection:
    extra = fields.pop("extra", None)
    return Connection(conn_id="c1", conn_type=conn_type, extra=json.dumps(extra) if extra else None, **fields)


def leftover_tls_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("certified-tls-*")}


def test_pem_text_and_paths_give_the_same_working_context(pki: Pki) -> None:
    paths = user_tls(pki, "alice", "lclstream-api")
    before = leftover_tls_folders()
    for extra in (paths, as_pem_text(paths)):
        endpoint = endpoint_from(conn("lclstream", host="https://127.0.0.1:8443", extra=extra))
        assert endpoint.target == "https://127.0.0.1:8443"
        assert endpoint.tls is not None
        ctx = endpoint.tls.context()
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert leftover_tls_folders() == before  # PEM text went through a private folder, removed at once


def test_the_private_key_never_shows_in_a_repr(pki: Pki) -> None:
    extra = as_pem_text(user_tls(pki, "alice", "lclstream-api"))
    endpoint = endpoint_from(conn("lclstream", host="https://127.0.0.1:8443", extra=extra))
    assert "PRIVATE KEY" not in repr(endpoint) and "PRIVATE KEY" not in str(endpoint.model_dump())


def test_form_prefixed_extras_and_host_with_port(pki: Pki) -> None:
    extra = {f"extra__psik__{k}": v for k, v in user_tls(pki, "alice", "lclstream-api").items()}
    endpoint = endpoint_from(conn("psik", host="psik.example.org", port=8445, extra=extra))
    assert endpoint.target == "https://psik.example.org:8445"
    assert endpoint.tls is not None and endpoint.tls.cert is not None


def test_a_certified_folder_and_an_alias(pki: Pki) -> None:
    endpoint = endpoint_from(conn("lclstream", host="lclstream", extra={"certified_config": str(pki.user_dir("alice"))}))
    assert endpoint.target == "lclstream" and endpoint.tls is None
    assert endpoint.certified_config == str(pki.user_dir("alice"))


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"host": ""}, "host", "required"),
    ({"host": "http://127.0.0.1:8443"}, "host", "only https"),
    ({"host": "https://h:1", "extra": {"client_cert": "/x.crt"}}, "client_key", "both"),
    ({"host": "https://h:1", "extra": {"timeout": "soon"}}, "timeout", "number"),
    ({"host": "https://h:1", "extra": {"check_hostname": "maybe", "ca_cert": "x"}}, "check_hostname", "true or false"),
])
def test_bad_service_fields_are_named(fields: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(ConnectionFieldError) as err:
        endpoint_from(conn("lclstream", **fields))
    assert err.value.field == field and words in str(err.value) and "'c1'" in str(err.value)


def test_unreadable_material_says_which_field(tmp_path: Path) -> None:
    endpoint = endpoint_from(conn("lclstream", host="https://h:1", extra={
        "client_cert": str(tmp_path / "missing.crt"), "client_key": str(tmp_path / "missing.key")}))
    with pytest.raises(CertifiedError, match="cert: no file"):
        assert endpoint.tls is not None
        endpoint.tls.context()
    garbage = endpoint_from(conn("lclstream", host="https://h:1", extra={"ca_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n"}))
    with pytest.raises(CertifiedError, match="ca: not a usable CA"):
        assert garbage.tls is not None
        garbage.tls.context()


def test_kafka_connection_forms(pki: Pki) -> None:
    plain = settings_from(conn("lclstream_kafka", host="b1:9092, b2:9092"))
    assert plain.bootstrap_servers == ["b1:9092", "b2:9092"] and plain.topic == "runs"
    assert plain.group_id == "airflow-lclstream" and plain.auto_offset_reset == "latest"
    assert "ssl_context" not in plain.client_kwargs()
    one = settings_from(conn("lclstream_kafka", host="broker", port=9093, extra={"topic": "mfx-runs"}))
    assert one.bootstrap_servers == ["broker:9093"] and one.topic == "mfx-runs"
    tls = settings_from(conn("lclstream_kafka", host="b1:9093", extra={
        "security_protocol": "ssl", **as_pem_text(user_tls(pki, "alice", "lclstream-api"))}))
    kwargs = tls.client_kwargs()
    assert kwargs["security_protocol"] == "SSL" and isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].minimum_version == ssl.TLSVersion.TLSv1_2
    sasl = settings_from(conn("lclstream_kafka", host="b1:9094", login="airflow", password="s3cret-pw",
                              extra={"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"}))
    kwargs = sasl.client_kwargs()
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512" and kwargs["sasl_plain_password"] == "s3cret-pw"
    assert "s3cret-pw" not in repr(sasl)


@pytest.mark.parametrize(("fields", "field"), [
    ({"host": ""}, "host"),
    ({"host": "b1"}, "host"),
    ({"host": "b1:9092", "extra": {"security_protocol": "TLS"}}, "security_protocol"),
    ({"host": "b1:9092", "extra": {"security_protocol": "SASL_SSL"}}, "login"),
    ({"host": "b1:9092", "extra": {"auto_offset_reset": "middle"}}, "auto_offset_reset"),
    ({"host": "b1:9092", "extra": {"topic": "bad topic"}}, "topic"),
])
def test_bad_kafka_fields_are_named(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ConnectionFieldError) as err:
        settings_from(conn("lclstream_kafka", **fields))
    assert err.value.field == field
