"""The site's certified services, each started as its own program with a config file in its folder.

One function per service writes the config the service's own settings model accepts, starts the
program on 127.0.0.1 and returns once it accepts connections. Stopping a service also cancels the
Psi-k jobs it left running (buffers, mpiexec ranks, consumer jobs), so nothing outlives the site.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from airflow_provider_lclstream.local_site.processes import BIN, ServiceProcess, free_port
from psik.manager import JobManager
from psik.models import PsikConfig

log = logging.getLogger("lclstream.site")


class SiteService:
    """A running certified service: its process, URL and the Psi-k jobs folder it owns."""

    def __init__(self, process: ServiceProcess, url: str, psik_config: PsikConfig | None) -> None:
        self.process = process
        self.url = url
        self.psik_config = psik_config

    @classmethod
    def launch(cls, name: str, argv: list[str], folder: Path, port: int, env: dict[str, str],
               psik_config: PsikConfig | None, timeout: float) -> SiteService:
        """Start ``argv`` (log ``folder/NAME.log``) and return once it accepts on ``port``; stopped on failure."""
        proc = ServiceProcess.start(name, argv, folder / f"{name}.log", env)
        service = cls(proc, f"https://127.0.0.1:{port}", psik_config)
        try:
            proc.wait_listening(port, timeout)
        except BaseException:
            service.stop()
            raise
        return service

    @property
    def name(self) -> str:
        return self.process.name

    def stop(self) -> None:
        self.process.stop()
        if self.psik_config is not None:
            cancel_unfinished_jobs(self.psik_config)


def cancel_unfinished_jobs(config: PsikConfig) -> int:
    """Cancel every job under ``config.prefix`` that has not ended; returns how many were cancelled."""
    if not config.prefix.exists():
        return 0
    manager = JobManager(config)
    cancelled = 0
    for record in manager.list(limit=100_000).jobs:
        if not record.state.terminal:
            try:
                manager.cancel(record.jobid)
                cancelled += 1
            except Exception as exc:  # it ended meanwhile
                log.debug("cancel %s: %s", record.jobid, exc)
    if cancelled:
        log.info("cancelled %d unfinished Psi-k job(s) under %s", cancelled, config.prefix)
    return cancelled


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_psik_api(folder: Path, certified_dir: Path, port: int, env: dict[str, str],
                   accounts: dict[str, str] | None = None, timeout: float = 90.0) -> SiteService:
    """Psik-API with the local backend; its jobs live in ``folder/jobs`` and run as the OS account
    ``accounts`` maps each caller's identity to."""
    config = PsikConfig(prefix=folder / "jobs", poll_interval=2.0, accounts=accounts)
    path = _write_yaml(folder / "psik.yaml", config.model_dump(mode="json"))
    argv = [str(BIN / "psik-api"), "--config", str(path), "--listen", f"https://127.0.0.1:{port}",
            "--certified-config", str(certified_dir)]
    return SiteService.launch("psik-api", argv, folder, port, env, config, timeout)


def start_lclstream_api(folder: Path, certified_dir: Path, port: int, env: dict[str, str],
                        settings: dict[str, Any] | None = None, timeout: float = 90.0) -> SiteService:
    """LCLStream-API with its jobs on the local Psi-k backend; state (SQLite, jobs) in ``folder/state``.

    ``settings`` overrides keys of the service config (see ``lclstream_api/settings.py``).
    """
    from lclstream_api.settings import load_settings

    pool = free_port() % 5000 + 20000
    data = {"listen": f"https://127.0.0.1:{port}", "callback_listen": f"http://127.0.0.1:{free_port()}", "state_dir": str(folder / "state"),
            "certified_config": str(certified_dir), "port_pool": {"start": pool, "end": pool + 99},
            "poll_interval": 0.5, **(settings or {})}
    config = load_settings(data)  # a bad override fails here, naming the field
    path = _write_yaml(folder / "lclstream-api.yaml", data)
    argv = [str(BIN / "lclstream-api"), "--config", str(path)]
    return SiteService.launch("lclstream-api", argv, folder, port, env, config.psik_config(), timeout)


def start_elog(folder: Path, certified_dir: Path, port: int, env: dict[str, str],
               writers: list[str] | None = None, timeout: float = 90.0) -> SiteService:
    """The ELog service (``lclstream-elog serve``): run records in ``folder/elog.sqlite``; ``writers`` (the
    DAQ's identity) may open and close runs, everyone introduced may read and annotate them."""
    from elog.settings import load_settings

    path = _write_yaml(folder / "elog.yaml", {"listen": f"https://127.0.0.1:{port}", "database": "elog.sqlite",
                                              "certified_config": str(certified_dir), "writers": writers or []})
    load_settings(path)  # the service's own model: a bad setting fails here, naming the field
    argv = [str(BIN / "lclstream-elog"), "serve", "--config", str(path)]
    return SiteService.launch("lclstream-elog", argv, folder, port, env, None, timeout)
