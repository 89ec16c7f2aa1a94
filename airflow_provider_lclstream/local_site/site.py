"""``LocalSite``: the whole system on this machine's loopback, in one folder, stopped whole.

What it brings up, in order (each piece can be left out, Kafka can be an existing broker):

1. a certified PKI (``pki/``): an identity for every service and every user, each user introduced to
   every service under its own name. Besides the people (``users``) there are ``airflow`` (Airflow's
   workers: they request transfers and annotate runs), ``hpc`` (the HPC side: Airflow submits the
   consumer jobs to Psik-API as ``hpc``, and those jobs pull their data as ``hpc``) and ``daq`` (the
   DAQ, the one writer of the ELog's run records);
2. Kafka (``elog.broker``), or the broker named by ``kafka_bootstrap``;
3. Psik-API (``psik/``) and LCLStream-API (``lclstream/``), jobs on the local Psi-k backend;
4. the ELog service (``elog/``);
5. Airflow (``airflow/``): api-server, scheduler, dag-processor and triggerer, see ``airflow.py``, with
   a connection to each service (``lclstream_default``, ``psik_default``, ``elog_default``,
   ``lclstream_kafka_default``) and the Variables the run DAGs of ``dags/`` need on this machine
   (the consumer's identity folder, where its data lands: ``data/``).

``stop()`` stops everything it started, in reverse order, with every descendant process, also when
start-up fails half-way and at interpreter exit; ``site.json`` in the folder says what runs where.

    with LocalSite(SiteSettings(root=Path("/tmp/site"), airflow=AirflowSettings(dags_folder=dags))) as site:
        with site.airflow.client() as api:
            api.trigger("my_dag", conf={})
        subprocess.run(["lclstream", "list"], env=site.env("alice"))
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import json
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

from airflow_provider_lclstream.local_site.airflow import AirflowInstance, AirflowSettings
from airflow_provider_lclstream.local_site.pki import SitePki
from airflow_provider_lclstream.local_site.processes import BIN, free_port
from airflow_provider_lclstream.local_site.services import (
    SiteService,
    start_elog,
    start_lclstream_api,
    start_psik_api,
)
from certified.config import NAME_PATTERN, replace_file

log = logging.getLogger("lclstream.site")
AIRFLOW_IDENTITY = "airflow"
HPC_IDENTITY = "hpc"
DAQ_IDENTITY = "daq"
# alias -> certified identity name of the service
SERVICE_IDENTITIES = {"psik": "psik-api", "lclstream": "lclstream-api", "elog": "elog"}


class SiteSettings(BaseModel):
    """What the local site runs. Every field but ``root`` has a working default."""

    model_config = ConfigDict(extra="forbid")

    root: Path = Field(description="the one folder everything lives in (created if missing)")
    users: list[Annotated[str, Field(pattern=NAME_PATTERN.pattern)]] = Field(
        default_factory=lambda: ["alice"], description="people with an identity (certified names)")
    kafka: bool = Field(True, description="start a Kafka broker (unless kafka_bootstrap names one)")
    kafka_bootstrap: str | None = Field(None, description="host:port of an existing broker to use instead")
    kafka_topic: str = Field("runs", pattern=r"^[A-Za-z0-9._-]{1,249}$",
                             description="the run events' topic: the DAQ publishes to it, the DAGs' trigger reads it")
    psik: bool = Field(True, description="start Psik-API")
    lclstream: bool = Field(True, description="start LCLStream-API")
    lclstream_settings: dict[str, Any] = Field(default_factory=dict, description="LCLStream-API config overrides")
    elog: bool = Field(True, description="start the ELog service (the identity daq is its writer)")
    airflow: AirflowSettings | None = Field(default_factory=AirflowSettings, description="None: no Airflow")
    key_type: str = Field("ed25519", pattern="^(ed25519|p256)$", description="key type of every identity")


class LocalSite:
    """Start with ``start()`` or ``with``; ``stop()`` is idempotent and also runs at interpreter exit."""

    def __init__(self, settings: SiteSettings) -> None:
        self.settings = settings
        self.root = settings.root.absolute()
        self.pki: SitePki | None = None
        self.kafka_bootstrap: str | None = settings.kafka_bootstrap
        self.services: dict[str, SiteService] = {}
        self.airflow: AirflowInstance | None = None
        self.timings: dict[str, float] = {}
        self._broker: Any = None
        self._ports: dict[str, int] = {}
        self._seen: dict[int, float] = {}

    # -- start ---------------------------------------------------------------------------------------

    def _wanted_services(self) -> list[str]:
        s = self.settings
        return [alias for alias, on in (("psik", s.psik), ("lclstream", s.lclstream), ("elog", s.elog)) if on]

    def url(self, alias: str) -> str:
        """The https URL of a service of the site (``psik``, ``lclstream``, ``elog``)."""
        if alias not in self._ports:
            raise KeyError(f"service {alias!r} is not part of this site (it has: {', '.join(self._ports) or 'none'})")
        return f"https://127.0.0.1:{self._ports[alias]}"

    def start(self) -> None:
        started = time.monotonic()
        atexit.register(self.stop)
        try:
            self._start_pieces()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - started
        self.write_description()
        log.info("site: up in %.1f s (%s)", self.timings["total"],
                 ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items() if k != "total"))

    def _timed(self, name: str, since: float) -> None:
        self.timings[name] = time.monotonic() - since

    def _start_pieces(self) -> None:
        s = self.settings
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self._ports = {alias: free_port() for alias in self._wanted_services()}
        t = time.monotonic()
        users = self.identities()
        self.pki = SitePki.create(self.root / "pki", {a: (SERVICE_IDENTITIES[a], self.url(a)) for a in self._ports},
                                  users, key_type=s.key_type)  # type: ignore[arg-type]
        self._timed("pki", t)
        if s.kafka and not self.kafka_bootstrap:
            from elog.broker import KafkaBroker, KafkaBrokerSettings

            t = time.monotonic()
            self._broker = KafkaBroker(KafkaBrokerSettings(startup_timeout=240))
            self.kafka_bootstrap = self._broker.start()
            self._timed("kafka", t)
        env = self.base_env()
        starters = {"psik": start_psik_api, "lclstream": start_lclstream_api, "elog": start_elog}
        accounts = {user: getpass.getuser() for user in users}  # one machine: every identity's jobs run as us
        for alias, port in self._ports.items():
            t = time.monotonic()
            service_dir = self.pki.dir(SERVICE_IDENTITIES[alias])
            kwargs: dict[str, Any] = {}
            if alias == "lclstream":
                kwargs = {"settings": {"accounts": accounts, **(s.lclstream_settings or {})}}
            elif alias == "psik":
                kwargs = {"accounts": accounts}
            elif alias == "elog":
                kwargs = {"writers": [DAQ_IDENTITY]}
            self.services[alias] = starters[alias](self.root / alias, service_dir, port, env, **kwargs)
            self._timed(alias, t)
        if s.airflow is not None:
            t = time.monotonic()
            airflow = s.airflow.model_copy(update={
                "connections": {**self.airflow_connections(), **s.airflow.connections},
                "variables": {**self.dag_variables(), **s.airflow.variables}})
            self.airflow = AirflowInstance(self.root / "airflow", airflow, self.env(AIRFLOW_IDENTITY))
            self.airflow.start()
            self._timed("airflow", t)
            self.timings.update({f"airflow_{k}": v for k, v in self.airflow.timings.items()})

    def identities(self) -> list[str]:
        """Every identity of the PKI: the people, then airflow and hpc (with Airflow), daq (with the ELog)."""
        s = self.settings
        names = list(s.users)
        if s.airflow is not None:
            names += [AIRFLOW_IDENTITY, HPC_IDENTITY]
        if s.elog:
            names.append(DAQ_IDENTITY)
        return list(dict.fromkeys(names))

    def airflow_connections(self) -> dict[str, dict[str, Any]]:
        """Airflow's connection to each piece of the site (as ``AIRFLOW_CONN_*``): the services by their
        certified alias with an identity folder (``airflow``; Psik-API as ``hpc``), Kafka by address."""
        assert self.pki is not None
        conns: dict[str, dict[str, Any]] = {}
        who = {"lclstream": AIRFLOW_IDENTITY, "psik": HPC_IDENTITY, "elog": AIRFLOW_IDENTITY}
        for alias in self._ports:
            conns[f"{alias}_default"] = {"conn_type": alias, "host": alias,
                                         "extra": {"certified_config": str(self.pki.dir(who[alias]))}}
        if self.kafka_bootstrap:
            conns["lclstream_kafka_default"] = {"conn_type": "lclstream_kafka", "host": self.kafka_bootstrap,
                                                "extra": {"topic": self.settings.kafka_topic,
                                                          "group_id": "airflow-lclstream",
                                                          # a broker of our own is new: read it all;
                                                          # someone else's may hold old runs
                                                          "auto_offset_reset": "earliest" if self._broker
                                                          else "latest"}}
        return conns

    def dag_variables(self) -> dict[str, Any]:
        """The Variables of the run DAGs (``dags/``) that differ on this machine from their defaults: the
        consumer jobs present the ``hpc`` identity and write their data under ``data/``."""
        assert self.pki is not None
        return {"lclstream_consumer_environment": {"CERTIFIED_CONFIG": str(self.pki.dir(HPC_IDENTITY))},
                "lclstream_consumer_out_dir": str(self.root / "data" / "{experiment}" / "r{run:04d}")}

    @property
    def data_root(self) -> Path:
        """Where the DAQ writes run directories (``lclstream-elog run --data-root``)."""
        return self.root / "runs"

    def daq_argv(self, command: str, *args: str) -> list[str]:
        """``lclstream-elog COMMAND ARGS`` as this site's DAQ (run with ``env("daq")``): the run records in
        its ELog, the run files under ``runs/``, the run events on its Kafka topic."""
        argv = [str(BIN / "lclstream-elog"), command, *args]
        if command in ("run", "start", "stop"):
            argv += ["--data-root", str(self.data_root), "--topic", self.settings.kafka_topic]
        return argv

    # -- use -----------------------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        """os.environ with the venv's programs first on PATH and the site's Kafka broker."""
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
        if self.kafka_bootstrap:
            env["LCLSTREAM_KAFKA_BOOTSTRAP"] = self.kafka_bootstrap
        return env

    def env(self, user: str) -> dict[str, str]:
        """Environment for a user's commands: their identity ($CERTIFIED_CONFIG), LCLSTREAM_SERVER,
        LCLSTREAM_ELOG and the Kafka broker (so ``lclstream-elog run`` as ``daq`` takes a run)."""
        if self.pki is None:
            raise RuntimeError("the site is not started")
        env = {**self.base_env(), "CERTIFIED_CONFIG": str(self.pki.user_dir(user))}
        if "lclstream" in self._ports:
            env["LCLSTREAM_SERVER"] = "lclstream"
        if "elog" in self._ports:
            env["LCLSTREAM_ELOG"] = "elog"
        return env

    def description(self) -> dict[str, Any]:
        """What runs where (written to ``site.json``; the CLI prints it with ``--json``)."""
        out: dict[str, Any] = {"root": str(self.root), "kafka_bootstrap": self.kafka_bootstrap,
                               "services": {}, "users": {}, "timings_s": {k: round(v, 2) for k, v in self.timings.items()}}
        if self._broker is not None:
            out["kafka_log"] = str(self._broker.log_path)
        for alias, service in self.services.items():
            out["services"][alias] = {"url": service.url, "pid": service.process.pid,
                                      "log": str(service.process.log_path)}
        if self.pki is not None:
            out["users"] = {u: str(self.pki.user_dir(u)) for u in self.pki.users}
        if self.airflow is not None:
            out["airflow"] = {"url": self.airflow.url, "username": self.airflow.username,
                              "password": self.airflow.password, "home": str(self.airflow.home),
                              "dags_folder": str(self.airflow.dags_folder),
                              "pids": {n: p.pid for n, p in self.airflow.processes.items()},
                              "logs": str(self.airflow.logs)}
        return out

    def write_description(self) -> Path:
        path = self.root / "site.json"
        replace_file(path, json.dumps(self.description(), indent=2).encode(), 0o600)  # holds the Airflow password
        return path

    def seen_pids(self) -> dict[int, float]:
        """pid -> creation time of every process of the site noted so far (Kafka's JVM included), also
        of pieces already stopped: after ``stop()`` none of them may be alive."""
        for service in self.services.values():
            self._seen.update(service.process.seen_pids())
        if self.airflow is not None:
            self._seen.update(self.airflow.seen_pids())
        proc = getattr(self._broker, "proc", None)
        if proc is not None:
            with contextlib.suppress(psutil.Error):
                self._seen[proc.pid] = psutil.Process(proc.pid).create_time()
        return dict(self._seen)

    # -- stop ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop Airflow, then the services (cancelling their jobs), then Kafka. Safe to call twice."""
        atexit.unregister(self.stop)
        self.seen_pids()
        if self.airflow is not None:
            self.airflow.stop()
        for alias in reversed(list(self.services)):
            self.services.pop(alias).stop()
        broker, self._broker = self._broker, None
        if broker is not None:
            broker.stop()

    def __enter__(self) -> LocalSite:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
