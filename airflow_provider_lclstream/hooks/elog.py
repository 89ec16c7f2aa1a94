"""``ElogHook``: an ``elog`` connection -> the ELog service's client (``ElogClient``).

The connection has the shape of the other service connections (``hooks/service.py``): ``host`` is the
ELog's https URL, or a certified alias with ``certified_config``; mutual TLS from ``client_cert``,
``client_key`` and ``ca_cert`` as file paths or PEM text. The annotation's author is the identity the
connection presents (the ELog takes it from the certificate, never from the request).

    hook = ElogHook("elog_default")
    record = hook.get("mfxp1001121", 12)          # RunRecord: state, event_count, files, annotations
    hook.annotate("mfxp1001121", 12, "streamed to S3DF", body={"events": 3600})
"""

from __future__ import annotations

from typing import Any

from airflow_provider_lclstream.hooks.service import ServiceHook
from elog.client import ElogClient
from elog.records import Annotation, RunRecord, RunState


class ElogHook(ServiceHook[ElogClient, Any]):
    """Read run records and annotate runs in the facility's ELog (mutual TLS).

    :param elog_conn_id: the ``elog`` connection (default ``elog_default``).
    """

    conn_name_attr = "elog_conn_id"
    default_conn_name = "elog_default"
    conn_type = "elog"
    hook_name = "LCLStream ELog"
    client_class = ElogClient

    def __init__(self, elog_conn_id: str = default_conn_name) -> None:
        super().__init__(elog_conn_id)

    def runs(self, experiment: str | None = None, state: RunState | str | None = None,
             limit: int = 1000) -> list[RunRecord]:
        return self.get_conn().runs(experiment, state, limit)

    def get(self, experiment: str, run: int) -> RunRecord:
        return self.get_conn().get(experiment, run)

    def annotate(self, experiment: str, run: int, text: str, body: dict[str, Any] | None = None) -> Annotation:
        return self.get_conn().annotate(experiment, run, text, body)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: read the newest run."""
        try:
            runs = self.runs(limit=1)
        except Exception as exc:
            return False, f"ELog not reachable as configured: {exc}"
        return True, f"ELog answered: newest run {runs[0].key}" if runs else "ELog answered: no runs yet"
