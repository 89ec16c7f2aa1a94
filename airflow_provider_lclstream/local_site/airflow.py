"""A real Airflow 3 on this machine: api-server, scheduler, dag-processor and triggerer as separate programs.

Shaped for tests and the demo (and measured so): SQLite and the LocalExecutor with ``parallelism = 4``,
every listener on 127.0.0.1 (``[api] host``; ``--skip-serve-logs`` on the scheduler and triggerer, whose
log servers would listen on every interface), ``scheduler_idle_sleep_time = 0.1`` for a short path from
an event to a task, ``[workers] min_heartbeat_interval = 1`` and modules preloaded in every process
(``airflow_local_settings.py``; both explained where they are set), examples off, DAGs unpaused at
creation, and the simple auth manager with one known admin user for the UI and the REST API v2. Everything lives in one ``AIRFLOW_HOME`` with its own
``airflow.cfg`` (mode 0600: it holds the site's secrets), so a person can run ``airflow`` commands
against it with ``AIRFLOW_HOME`` set. After start-up the execution API is warmed with one
``GET /execution/health``: the first request to it is slow, and a task's first call would time out.

    instance = AirflowInstance(home, AirflowSettings(dags_folder=dags), env)
    instance.start()
    with instance.client() as api:
        run = api.trigger("my_dag", conf={"n": 3})
        api.wait_dag_run("my_dag", run.dag_run_id, timeout=120)
    instance.stop()
"""

from __future__ import annotations

import configparser
import io
import json
import logging
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from airflow_provider_lclstream.local_site.airflow_client import AirflowClient
from airflow_provider_lclstream.local_site.processes import (
    BIN,
    ServiceProcess,
    SiteError,
    free_port,
    log_tail,
)
from certified.config import replace_file

log = logging.getLogger("lclstream.site")
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
# modules the run DAGs' tasks use that import no Airflow: loaded once per Airflow process (see preload)
PRELOAD = ("streamer.config", "lclstream_api.client", "elog.client", "psik.client", "kafka", "jinja2.sandbox")
LOCAL_SETTINGS = '''"""Written by the LCLStream local site: import, once in every Airflow process, modules the tasks use.

A task is a fork of a LocalExecutor worker, itself a fork of the scheduler: what the scheduler imported at
start-up, every task starts with, instead of importing it again (about 0.4 s per task on a small machine).
Only modules that import no Airflow (this file is read while Airflow itself is being imported).
"""

import importlib
import logging

for _name in {modules!r}:
    try:
        importlib.import_module(_name)
    except Exception as _exc:  # a missing optional piece only costs the time saved
        logging.getLogger(__name__).debug("not preloaded: %s (%s)", _name, _exc)
'''


class AirflowSettings(BaseModel):
    """How the site runs Airflow; every field has a working default."""

    model_config = ConfigDict(extra="forbid")

    dags_folder: Path | None = Field(None, description="DAG files; default: an empty folder in AIRFLOW_HOME")
    username: str = Field("admin", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the UI and REST API user")
    password: str | None = Field(None, min_length=8, description="default: a random one, shown by the site")
    parallelism: int = Field(4, ge=1, le=64, description="[core] parallelism: LocalExecutor worker processes")
    scheduler_idle_sleep_time: float = Field(0.1, gt=0, le=5)
    config: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="more airflow.cfg settings, section -> key -> value (win over ours)")
    env: dict[str, str] = Field(default_factory=dict, description="more environment for every component")
    connections: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Airflow connections by id (JSON form), given as AIRFLOW_CONN_<ID>")
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Airflow Variables set through the REST API once Airflow is up "
                                          "(dicts and lists as JSON), so they can be changed in the UI")
    startup_timeout: float = Field(300.0, gt=0, description="seconds for migrate, and again for start-up")
    preload: list[str] = Field(default_factory=lambda: list(PRELOAD),
                               description="modules every Airflow process imports at start (airflow_local_settings"
                                           ".py), so that tasks, forked from the scheduler, start with them loaded")


def _clean_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` without any Airflow setting of the caller's, which would override the site's airflow.cfg."""
    return {k: v for k, v in base.items() if not k.startswith("AIRFLOW__") and not k.startswith("AIRFLOW_CONN_")
            and k not in ("AIRFLOW_HOME", "AIRFLOW_CONFIG")}


class AirflowInstance:
    """One Airflow on 127.0.0.1 with its home in ``home``; ``start``/``stop``, and ``client()`` once started."""

    def __init__(self, home: Path, settings: AirflowSettings | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.home = home
        self.settings = settings or AirflowSettings()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username = self.settings.username
        self.password = self.settings.password or secrets.token_urlsafe(12)
        self.dags_folder = self.settings.dags_folder or home / "dags"
        self.processes: dict[str, ServiceProcess] = {}
        self.timings: dict[str, float] = {}
        self.env = {**_clean_env(dict(env if env is not None else os.environ)), **self.settings.env,
                    "AIRFLOW_HOME": str(home), "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
        for conn_id, conn in self.settings.connections.items():
            self.env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)

    @property
    def config_path(self) -> Path:
        return self.home / "airflow.cfg"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def airflow_cfg(self) -> dict[str, dict[str, str]]:
        """Every setting the site gives Airflow, by section (written to ``airflow.cfg``)."""
        from cryptography.fernet import Fernet

        s = self.settings
        cfg: dict[str, dict[str, str]] = {
            "core": {
                "dags_folder": str(self.dags_folder),
                "executor": "LocalExecutor",
                "parallelism": str(s.parallelism),
                "load_examples": "False",
                "dags_are_paused_at_creation": "False",
                "auth_manager": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "simple_auth_manager_users": f"{s.username}:admin",
                "simple_auth_manager_passwords_file": str(self.home / "passwords.json"),
                "execution_api_server_url": f"{self.url}/execution/",
                "fernet_key": Fernet.generate_key().decode(),
                "dagbag_import_timeout": "120",
                "dag_file_processor_timeout": "180",
            },
            "database": {"sql_alchemy_conn": f"sqlite:///{self.home / 'airflow.db'}"},
            "api": {"host": "127.0.0.1", "port": str(self.port), "base_url": self.url, "workers": "1",
                    "secret_key": secrets.token_urlsafe(32)},
            "api_auth": {"jwt_secret": secrets.token_urlsafe(32)},
            "scheduler": {"scheduler_idle_sleep_time": str(s.scheduler_idle_sleep_time)},
            # the task supervisor notices its task's exit within this many seconds (default 5): a deferred task
            # whose trigger fires sooner than that is otherwise failed by its own late "success" (Airflow #72716)
            "workers": {"min_heartbeat_interval": "1"},
            "dag_processor": {"refresh_interval": "10"},
            "logging": {"base_log_folder": str(self.logs), "colored_console_log": "False"},
        }
        for section, values in s.config.items():
            cfg.setdefault(section, {}).update(values)
        return cfg

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_dict(self.airflow_cfg())
        text = io.StringIO()
        parser.write(text)
        replace_file(self.config_path, text.getvalue().encode(), 0o600)
        if self.settings.preload:
            config = self.home / "config"
            config.mkdir(exist_ok=True)
            (config / "airflow_local_settings.py").write_text(LOCAL_SETTINGS.format(modules=tuple(self.settings.preload)))
        passwords = self.home / "passwords.json"
        replace_file(passwords, json.dumps({self.username: self.password}).encode(), 0o600)

    def migrate(self) -> float:
        """``airflow db migrate`` (creates the SQLite database); returns the seconds it took."""
        started = time.monotonic()
        log_path = self.logs / "db-migrate.log"
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as out:
            try:
                done = subprocess.run([str(BIN / "airflow"), "db", "migrate"], stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=self.env, timeout=self.settings.startup_timeout)
            except subprocess.TimeoutExpired:
                raise SiteError(f"airflow db migrate did not finish within {self.settings.startup_timeout:g} s; "
                                f"its log ({log_path}) ends with:\n{log_tail(log_path)}") from None
        if done.returncode != 0:
            raise SiteError(f"airflow db migrate failed (exit {done.returncode}); its log ({log_path}) "
                            f"ends with:\n{log_tail(log_path)}")
        return time.monotonic() - started

    def start(self) -> None:
        """Configure, migrate, start the four components, wait until each is healthy, warm the execution API."""
        started = time.monotonic()
        try:
            self.write_config()
            self.timings["migrate"] = self.migrate()
            for name, args in COMPONENTS.items():
                self.processes[name] = ServiceProcess.start(
                    f"airflow {name}", [str(BIN / "airflow"), *args], self.logs / f"{name}.log", self.env,
                    cwd=self.home)
            api = self.processes["api-server"]
            self.timings["api_listening"] = api.wait_listening(self.port, self.settings.startup_timeout)
            api.wait_until(self._healthy, "reporting every component healthy", self.settings.startup_timeout)
            api.wait_until(self._execution_api_answers, "answering on /execution/health", 60)
            self.timings["healthy"] = time.monotonic() - started
            if self.settings.variables:
                with self.client() as client:
                    for key, value in self.settings.variables.items():
                        client.set_variable(key, value)
        except BaseException:
            self.stop()
            raise
        log.info("airflow: healthy on %s after %.1f s (migrate %.1f s)", self.url, self.timings["healthy"],
                 self.timings["migrate"])

    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health``: the status of the database and each component."""
        response = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=10)
        response.raise_for_status()
        return response.json()

    def _healthy(self) -> bool:
        self._check_running()
        health = self.health()
        return all((health.get(part) or {}).get("status") == "healthy" for part in HEALTH_PARTS)

    def _execution_api_answers(self) -> bool:
        return httpx.get(f"{self.url}/execution/health", timeout=30).status_code == 200

    def _check_running(self) -> None:
        for proc in self.processes.values():
            if not proc.running():
                raise proc.fail(f"exited with code {proc.proc.returncode}")

    def client(self, timeout: float = 60.0) -> AirflowClient:
        """A REST API v2 client logged in as the site's user."""
        return AirflowClient.login(self.url, self.username, self.password, timeout=timeout)

    def seen_pids(self) -> dict[int, float]:
        pids: dict[int, float] = {}
        for proc in self.processes.values():
            pids.update(proc.seen_pids())
        return pids

    def stop(self) -> None:
        """Stop the components (scheduler first, so no new task starts; api-server last). Idempotent."""
        for name in ("scheduler", "triggerer", "dag-processor", "api-server"):
            proc = self.processes.pop(name, None)
            if proc is not None:
                proc.stop()
