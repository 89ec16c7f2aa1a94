"""``PsikHook``: a ``psik`` connection -> Psik-API's client (``PsikClient``).

    hook = PsikHook("psik_default")
    job = hook.submit({"name": "consumer", "script": "lclstream pull ..."})
    hook.status(job.jobid).state, hook.logs(job.jobid, tail=20)
    client = await hook.aget_conn()          # AsyncPsikClient, for triggers
"""

from __future__ import annotations

from typing import Any

from airflow_provider_lclstream.hooks.service import ServiceHook
from psik.client import AsyncPsikClient, PsikClient, Stream
from psik.models import BackendInfo, JobRecord, JobSpec


class PsikHook(ServiceHook[PsikClient, AsyncPsikClient]):
    """List backends, submit, inspect, read the logs of and cancel Psi-k jobs through Psik-API.

    :param psik_conn_id: the ``psik`` connection (default ``psik_default``).
    """

    conn_name_attr = "psik_conn_id"
    default_conn_name = "psik_default"
    conn_type = "psik"
    hook_name = "Psik-API"
    client_class = PsikClient
    async_client_class = AsyncPsikClient

    def __init__(self, psik_conn_id: str = default_conn_name) -> None:
        super().__init__(psik_conn_id)

    def backends(self) -> list[BackendInfo]:
        return self.get_conn().backends()

    def submit(self, spec: JobSpec | dict[str, Any]) -> JobRecord:
        return self.get_conn().submit(spec)

    def status(self, jobid: str) -> JobRecord:
        return self.get_conn().get(jobid)

    def logs(self, jobid: str, stream: Stream = "stdout", tail: int | None = None) -> str:
        return self.get_conn().logs(jobid, stream, tail=tail)

    def cancel(self, jobid: str) -> JobRecord:
        return self.get_conn().cancel(jobid)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: list the backends this identity may use."""
        try:
            names = [b.name for b in self.backends()]
        except Exception as exc:
            return False, f"Psik-API not reachable as configured: {exc}"
        return True, f"Psik-API answered: backends {', '.join(names) or '(none allowed)'}"
