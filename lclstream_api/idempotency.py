"""What an ``Idempotency-Key`` promises: the same request sent again gets the transfer it made.

A client (or an Airflow task retried after a lost answer, or a run event delivered twice) sends
``POST /v1/transfers`` with a key it chose. The service keeps, beside the transfer, the hash of the
validated request (``request_hash``: config and options, defaults filled in, keys sorted), so a repeat
with the same body returns the existing transfer (200), and the same key with another body is a
mistake the client must hear about (409), never a silent hand-over of a different transfer.
"""

from __future__ import annotations

import hashlib
import json

from certified.api_errors import quoted
from lclstream_api.models import TransferRecord, TransferRequest, config_hash


def request_hash(request: TransferRequest) -> str:
    """SHA-256 of the request as the service understood it (equal for equal requests, whatever the spelling)."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def same_request(existing: TransferRecord, stored_hash: str | None, request: TransferRequest) -> bool:
    """Whether ``request`` is the one that made ``existing`` (records without a hash: same data, same options)."""
    if stored_hash is not None:
        return stored_hash == request_hash(request)
    return existing.config_hash == config_hash(request.config) and existing.options == request.options


def reuse_message(key: str, existing: TransferRecord) -> str:
    return (f"Idempotency-Key {quoted(key)} was already used for transfer {existing.id} with a different "
            "request body; send the same body to get that transfer back, or use a new key for a new transfer")
