"""LCLStream-API: REST service turning a streamer config into a running transfer; and the lclstream client.

Client side: ``TransferClient`` (request/status/list/cancel/credentials), ``stream(transfer_id_or_url,
server=ALIAS)`` (decoded batches with rank and sequence), ``CachedDataset`` (many-epoch training from a
local cache keyed by the config's hash).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lclstream_api.batches import BatchStream, CachedDataset
    from lclstream_api.client import TransferClient

__all__ = ["BatchStream", "CachedDataset", "TransferClient", "stream"]


def stream(transfer_id_or_url: str, **kwargs: Any) -> BatchStream:
    """Decoded batches of a transfer, by id (``server=ALIAS``) or URL (see ``lclstream_api.batches.stream``)."""
    from lclstream_api.batches import stream as _stream

    return _stream(transfer_id_or_url, **kwargs)


def __getattr__(name: str) -> Any:  # lazy: importing the package stays cheap for the server and CLI
    if name == "TransferClient":
        from lclstream_api.client import TransferClient

        return TransferClient
    if name in ("BatchStream", "CachedDataset"):
        from lclstream_api import batches as module

        return getattr(module, name)
    raise AttributeError(name)
