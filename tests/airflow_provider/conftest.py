"""Fixtures for the provider's tests: a private Airflow home, real services, and connections to them.

Airflow reads its configuration when it is first imported, so the private ``AIRFLOW_HOME`` (SQLite,
no examples) is set here, at collection, before any test module imports Airflow. ``airflow_db``
migrates its metadata database once per session (``dag.test()`` needs it). Connections are given to
Airflow as ``AIRFLOW_CONN_*`` variables, exactly as a deployment's secrets would be:

* ``kafka_conn``: an ``lclstream_kafka`` connection to the session's real broker, on a fresh topic;
* ``service`` (the LCLStream-API suite's fixture) + ``lclstream_conn``: a real LCLStream-API process
  (local Psi-k jobs) and an ``lclstream`` connection for alice with her TLS material as PEM text;
* ``psik_api`` + ``psik_conn``: a real Psik-API process (local backend) and a ``psik`` connection for
  alice with her TLS material as file paths.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kafka import kafka_bootstrap  # noqa: F401 - the session broker
from tests.fixtures.pki import Pki, make_pki
from tests.lclstream_api.conftest import api_pki, service  # noqa: F401 - a real LCLStream-API (alice, bob)
from tests.lclstream_api.harness import Service

VENV_BIN = Path(sys.executable).parent

if "airflow" in sys.modules:  # pragma: no cover - another suite configured Airflow first
    AIRFLOW_HOME = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
else:
    AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="lclstream-airflow-home-"))
    (AIRFLOW_HOME / "dags").mkdir()
    os.environ.update({
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW_HOME / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    })


def pytest_sessionfinish(session: pytest.Session) -> None:
    if AIRFLOW_HOME.name.startswith("lclstream-airflow-home-"):
        shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The private Airflow home with a migrated metadata database."""
    result = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], capture_output=True, text=True,
                            timeout=600, env=dict(os.environ))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return AIRFLOW_HOME


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn_type: str, **fields: object) -> str:
    """Define an Airflow connection for this test (``AIRFLOW_CONN_<ID>`` JSON); returns its id."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": conn_type, **fields}))
    return conn_id


@dataclass
class KafkaTopic:
    bootstrap: str
    topic: str
    group: str
    conn_id: str


@pytest.fixture
def kafka_conn(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> KafkaTopic:  # noqa: F811
    """A fresh topic and consumer group on the session broker, and an ``lclstream_kafka`` connection."""
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"runs-{suffix}", f"airflow-{suffix}"
    conn_id = set_connection(monkeypatch, f"kafka_{suffix}", "lclstream_kafka", host=kafka_bootstrap,
                             extra={"topic": topic, "group_id": group, "auto_offset_reset": "earliest"})
    return KafkaTopic(kafka_bootstrap, topic, group, conn_id)


def user_tls(pki: Pki, user: str, server: str) -> dict[str, str]:
    """The files a user presents to ``server``: its introduction, its key, and the server's CA."""
    user_dir, server_dir = pki.user_dir(user), pki.server_dir
    return {"client_cert": str(user_dir / "intros" / f"{server}.crt"), "client_key": str(user_dir / "id.key"),
            "ca_cert": str(server_dir / "CA.crt")}


def as_pem_text(paths: dict[str, str]) -> dict[str, str]:
    return {name: Path(path).read_text() for name, path in paths.items()}


@pytest.fixture
def lclstream_conn(service: Service, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    """An ``lclstream`` connection for alice; her certificate, key and the CA given as PEM text."""
    return set_connection(monkeypatch, "lclstream_alice", "lclstream", host=service.url,
                          extra=as_pem_text(user_tls(service.pki, "alice", "lclstream-api")))


@dataclass
class PsikApi:
    url: str
    pki: Pki
    prefix: Path
    config: Path


@pytest.fixture
def psik_api(tmp_path: Path) -> Iterator[PsikApi]:
    """A real psik-api process (local backend) over mutual TLS; alice's and bob's jobs run as this account."""
    from tests.psik.helpers import psik_api as running_psik_api

    root = tmp_path / "psikapi"
    root.mkdir()
    pki = make_pki(root, server="psik", users=("alice", "bob"))
    prefix = root / "jobs"
    cfg = root / "psik.yaml"
    me = getpass.getuser()
    cfg.write_text(json.dumps({"prefix": str(prefix), "poll_interval": 1.0, "accounts": {"alice": me, "bob": me},
                               "backends": {"default": {"type": "local"}}}))
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    with running_psik_api(cfg, pki.server_dir, root / "psik-api.log", env=env) as url:
        yield PsikApi(url=url, pki=pki, prefix=prefix, config=cfg)


@pytest.fixture
def psik_conn(psik_api: PsikApi, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``psik`` connection for alice; her certificate, key and the CA given as file paths."""
    return set_connection(monkeypatch, "psik_alice", "psik", host=psik_api.url,
                          extra=user_tls(psik_api.pki, "alice", "psik"))


def dag_file(name: str, source: str) -> Any:
    """Write a DAG file into the private DAGs folder (``dag.test()`` reads DAGs from there) and import it;
    returns the module (its DAG is ``module.dag``)."""
    path = AIRFLOW_HOME / "dags" / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(f"lclstream_test_dags.{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
