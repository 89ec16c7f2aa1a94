"""The FastAPI applications: the mutual-TLS API, and the loopback callback listener.

Callbacks from the buffer and from Psi-k jobs cannot present client certificates, so the route
``POST /v1/callbacks/{kind}?transfer=ID`` is also served by a second, plain-HTTP app that
``lclstream-api`` binds to a loopback address only (``callback_listen``). Each transfer has its own
random secret; a callback is accepted only when its ``x-hub-signature-256`` is the HMAC-SHA256 of the
raw body under that secret. Anything else gets 403 and changes nothing. A signed callback that would
move the transfer back (an earlier buffer or job state) gets 409 and changes nothing either: the
decision is made before the answer (``lclstream_api.callbacks``), the update follows in the background.
Error answers have ``certified.api_errors``' shape on both apps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from certified.api_errors import error_response, field_error, install_error_handlers, quoted
from certified.signature import verify
from lclstream_api.manager import BUFFER, JOB, Rejected, TransferManager
from lclstream_api.models import DataCredentials, TransferList, TransferRequest, TransferView
from lclstream_api.states import TransferState

log = logging.getLogger("lclstream_api")

CALLBACK_KINDS = (BUFFER, JOB)


def _callback_router(manager: TransferManager) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/callbacks/{kind}", status_code=204, response_class=Response,
                 summary="Signed state callback from a transfer's buffer or Psi-k job")
    async def callback(kind: str, request: Request, transfer: Annotated[str, Query(min_length=1)],
                       signature: Annotated[str | None, Header(alias="x-hub-signature-256")] = None) -> Response:
        if kind not in CALLBACK_KINDS:
            raise HTTPException(404, f"unknown callback kind {quoted(kind)}; known: {', '.join(CALLBACK_KINDS)}")
        body = await request.body()
        secret = manager.secret(transfer)
        if secret is None or not signature or not verify(body, secret, signature):
            log.warning("rejected %s callback for transfer %s: bad or missing signature", kind, transfer)
            raise HTTPException(403, "callback signature does not match")
        try:
            payload: Any = json.loads(body)
        except ValueError as exc:
            raise HTTPException(400, "callback body is not JSON") from exc
        if not isinstance(payload, dict):
            raise HTTPException(422, f"callback body must be a JSON object, not {type(payload).__name__}")
        await run_in_threadpool(manager.on_callback, kind, transfer, payload)  # 409 when it would go back
        return Response(status_code=204)

    return router


def create_callback_app(manager: TransferManager) -> FastAPI:
    """Plain-HTTP app with only the callback route (bind it to loopback)."""
    app = FastAPI(title="LCLStream-API callbacks", openapi_url=None, docs_url=None, redoc_url=None)
    _install_errors(app)
    app.include_router(_callback_router(manager))
    return app


def _install_errors(app: FastAPI) -> None:
    install_error_handlers(app)

    @app.exception_handler(Rejected)
    async def _rejected(_request: Request, exc: Rejected) -> JSONResponse:
        if exc.field is not None:  # the same shape as FastAPI's own validation errors
            return error_response(exc.status, [field_error(["body", *exc.field.split(".")], exc.message)])
        return error_response(exc.status, exc.message)


def _default_caller() -> Callable[..., Any]:
    from certified.fastapi import caller

    return caller


def create_app(manager: TransferManager, caller_dependency: Callable[..., Any] | None = None) -> FastAPI:
    """The LCLStream-API app; serve it under certified mutual TLS (callers are certificate names)."""
    caller_dep = caller_dependency or _default_caller()

    # (dependencies as defaults: annotations are strings here and cannot see these local names)
    def caller_name(who: Any = Depends(caller_dep)) -> str:
        return str(getattr(who, "name", who))

    def caller_is_admin(who: Any = Depends(caller_dep)) -> bool:
        """Admin rights come from the trust entry that vouched for the caller, never from its name alone."""
        is_admin = getattr(who, "is_admin", None)
        return bool(is_admin(manager.settings.admins)) if callable(is_admin) else False

    caller_param = Depends(caller_name)
    admin_param = Depends(caller_is_admin)
    app = FastAPI(title="LCLStream-API", version="1",
                  description="Turn a streamer config into a running transfer: buffer + MPI producers.")
    _install_errors(app)

    @app.post("/v1/transfers", response_model=TransferView, status_code=201,
              responses={200: {"description": "existing transfer with this Idempotency-Key"},
                         409: {"description": "this Idempotency-Key was used with another request body"},
                         413: {"description": "request body over the service's max_body_bytes"},
                         429: {"description": "too many running transfers for this user"}})
    def request_transfer(body: TransferRequest, response: Response, caller: str = caller_param,
                         idempotency_key: Annotated[str | None, Header(max_length=256)] = None) -> TransferView:
        record, created = manager.create(caller, body, idempotency_key)
        if not created:
            response.status_code = 200
        return TransferView.of(record)

    @app.get("/v1/transfers", response_model=TransferList)
    def list_transfers(state: TransferState | None = None, caller: str = caller_param,
                       admin: bool = admin_param) -> TransferList:
        return TransferList(transfers=[TransferView.of(r) for r in manager.list(caller, state, admin)])

    @app.get("/v1/transfers/{transfer_id}", response_model=TransferView)
    def get_transfer(transfer_id: str, caller: str = caller_param, admin: bool = admin_param) -> TransferView:
        record = manager.get(transfer_id, caller, admin)
        return TransferView.of(manager.reconcile(record))

    @app.get("/v1/transfers/{transfer_id}/credentials", response_model=DataCredentials,
             responses={403: {"description": "an admin who is neither the owner nor a reader"},
                        404: {"description": "no such transfer, or the caller may not read it"},
                        409: {"description": "the transfer has ended"}})
    def transfer_credentials(transfer_id: str, caller: str = caller_param,
                             admin: bool = admin_param) -> DataCredentials:
        """How to pull the data: the url, and for a protected stream the transfer's CA and a consumer
        certificate with its key made for the caller (the owner, or one of the readers it named)."""
        return manager.credentials(transfer_id, caller, admin)

    @app.delete("/v1/transfers/{transfer_id}", response_model=TransferView)
    def cancel_transfer(transfer_id: str, caller: str = caller_param, admin: bool = admin_param) -> TransferView:
        return TransferView.of(manager.cancel(transfer_id, caller, admin))

    app.include_router(_callback_router(manager))
    return app
