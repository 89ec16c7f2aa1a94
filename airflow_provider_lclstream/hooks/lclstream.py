"""``LCLStreamHook``: an ``lclstream`` connection -> LCLStream-API's client (``TransferClient``).

    hook = LCLStreamHook("lclstream_default")
    view = hook.request(config, {"ranks": 2}, idempotency_key="mfxp1001121/12")
    hook.status(view.id).state
    client = await hook.aget_conn()          # AsyncTransferClient, for triggers
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_provider_lclstream.hooks.service import ServiceHook
from lclstream_api.client import AsyncTransferClient, TransferClient
from lclstream_api.models import TransferOptions, TransferView
from lclstream_api.states import TransferState


class LCLStreamHook(ServiceHook[TransferClient, AsyncTransferClient]):
    """Request, inspect, list and cancel transfers through LCLStream-API (mutual TLS).

    :param lclstream_conn_id: the ``lclstream`` connection (default ``lclstream_default``).
    """

    conn_name_attr = "lclstream_conn_id"
    default_conn_name = "lclstream_default"
    conn_type = "lclstream"
    hook_name = "LCLStream-API"
    client_class = TransferClient
    async_client_class = AsyncTransferClient

    def __init__(self, lclstream_conn_id: str = default_conn_name) -> None:
        super().__init__(lclstream_conn_id)

    def request(self, config: str | Path | dict[str, Any], options: TransferOptions | dict[str, Any] | None = None,
                *, idempotency_key: str | None = None) -> TransferView:
        return self.get_conn().request(config, options, idempotency_key=idempotency_key)

    def request_or_find(self, config: str | Path | dict[str, Any],
                        options: TransferOptions | dict[str, Any] | None = None, *,
                        idempotency_key: str | None = None) -> tuple[TransferView, bool]:
        """The transfer, and whether this request made it (False: an earlier one with the same key did)."""
        return self.get_conn().request_or_find(config, options, idempotency_key=idempotency_key)

    def status(self, transfer_id: str) -> TransferView:
        return self.get_conn().status(transfer_id)

    def cancel(self, transfer_id: str) -> TransferView:
        return self.get_conn().cancel(transfer_id)

    def list(self, state: TransferState | str | None = None) -> list[TransferView]:
        return self.get_conn().list(state)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: list this identity's transfers."""
        try:
            count = len(self.list())
        except Exception as exc:
            return False, f"LCLStream-API not reachable as configured: {exc}"
        return True, f"LCLStream-API answered: {count} transfers visible to this identity"
