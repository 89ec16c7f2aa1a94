"""The provider's manifest: what ``airflow providers list`` / ``get`` and the connection forms read.

Connection forms are declared as data (``conn-fields`` for the extras, ``ui-field-behaviour`` for
hidden and relabelled standard fields), the Airflow 3.2+ way; TLS keys and passwords are marked
sensitive (``format: password``), so the UI masks them and the secrets masker redacts them.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_lclstream.version import __version__

INTEGRATION = "LCLStream"
PACKAGE = "airflow_provider_lclstream"


def _text(label: str, description: str, default: str | None = None, secret: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    if secret:
        schema["format"] = "password"
    return {"label": label, "description": description, "schema": schema}


def _choice(label: str, description: str, choices: list[str], default: str) -> dict[str, Any]:
    return {"label": label, "description": description,
            "schema": {"type": ["string", "null"], "enum": choices, "default": default}}


TLS_FIELDS = {
    "client_cert": _text("Client certificate", "PEM text, or the path of a PEM file on the workers"),
    "client_key": _text("Client private key", "PEM text, or the path of a PEM file on the workers", secret=True),
    "ca_cert": _text("CA certificate", "CA that signs the server's certificate: PEM text or a file path"),
}
SERVICE_FIELDS = {
    **TLS_FIELDS,
    "certified_config": _text("certified identity folder",
                              "instead of the three fields above: a certified folder on the workers "
                              "(then Host may be a certified service alias)"),
    "timeout": {"label": "Request timeout (s)", "description": "seconds one request may take",
                "schema": {"type": ["number", "null"], "default": 60}},
}
SERVICE_FORM = {"hidden-fields": ["schema", "login", "password"], "relabeling": {"host": "URL"},
                "placeholders": {"host": "https://lclstream.example.org:8443", "port": "(part of the URL)"}}


def _service_form(url: str) -> dict[str, Any]:
    return {**SERVICE_FORM, "placeholders": {**SERVICE_FORM["placeholders"], "host": url}}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-lclstream",
        "name": "LCLStream",
        "description": "Stream detector data from facility beamlines into HPC jobs while the run is taking data: "
                       "run events from Kafka, transfers through LCLStream-API, jobs through Psik-API, "
                       "results noted on the run in the ELog.",
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["service"]}],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [
            f"{PACKAGE}.hooks.lclstream", f"{PACKAGE}.hooks.psik", f"{PACKAGE}.hooks.run_events",
            f"{PACKAGE}.hooks.elog"]}],
        "operators": [{"integration-name": INTEGRATION, "python-modules": [
            f"{PACKAGE}.operators.transfer", f"{PACKAGE}.operators.psik", f"{PACKAGE}.operators.elog"]}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [
            f"{PACKAGE}.sensors.buffer", f"{PACKAGE}.sensors.run_event"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": [
            f"{PACKAGE}.triggers.run_events", f"{PACKAGE}.triggers.transfer", f"{PACKAGE}.triggers.psik_job"]}],
        "connection-types": [
            {"connection-type": "lclstream", "hook-class-name": f"{PACKAGE}.hooks.lclstream.LCLStreamHook",
             "hook-name": "LCLStream-API", "conn-fields": SERVICE_FIELDS, "ui-field-behaviour": SERVICE_FORM},
            {"connection-type": "psik", "hook-class-name": f"{PACKAGE}.hooks.psik.PsikHook",
             "hook-name": "Psik-API", "conn-fields": SERVICE_FIELDS,
             "ui-field-behaviour": _service_form("https://login1.example.org:8445")},
            {"connection-type": "elog", "hook-class-name": f"{PACKAGE}.hooks.elog.ElogHook",
             "hook-name": "LCLStream ELog", "conn-fields": SERVICE_FIELDS,
             "ui-field-behaviour": _service_form("https://elog.example.org:8446")},
            {"connection-type": "lclstream_kafka", "hook-class-name": f"{PACKAGE}.hooks.run_events.RunEventsHook",
             "hook-name": "LCLStream run events (Kafka)",
             "conn-fields": {
                 "security_protocol": _choice("Security protocol", "how to reach the brokers",
                                              ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], "PLAINTEXT"),
                 "sasl_mechanism": _choice("SASL mechanism", "with SASL_*: Login and Password are the credentials",
                                           ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], "PLAIN"),
                 **TLS_FIELDS,
                 "topic": _text("Topic", "the run-events topic", "runs"),
                 "group_id": _text("Consumer group", "watchers sharing a group share one consumer",
                                   "airflow-lclstream"),
                 "auto_offset_reset": _choice("New group starts at", "where a consumer group with no committed "
                                              "offsets starts reading", ["latest", "earliest"], "latest"),
             },
             "ui-field-behaviour": {"hidden-fields": ["schema", "port"],
                                    "relabeling": {"host": "Bootstrap servers", "login": "SASL username",
                                                   "password": "SASL password"},
                                    "placeholders": {"host": "broker1:9092,broker2:9092"}}},
        ],
    }
