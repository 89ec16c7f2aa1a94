"""A small FastAPI app served by ``certified serve`` in the tests."""

from __future__ import annotations

from fastapi import Depends, FastAPI, HTTPException, Request

from certified.fastapi import Caller, caller
from certified.signature import SIGNATURE_HEADER

app = FastAPI()
received: list[dict[str, str | None]] = []
flaky_calls = {"count": 0}


@app.get("/whoami")
def whoami(who: Caller = Depends(caller)) -> dict[str, str | bool]:
    return {"caller": who.name, "issuer": who.issuer, "trusted_as": who.vouched_by, "admin": who.is_admin(["alice"])}


@app.post("/echo")
async def echo(request: Request, who: Caller = Depends(caller)) -> dict[str, object]:
    return {"caller": who.name, "body": (await request.body()).decode()}


@app.post("/hook")
async def hook(request: Request, who: Caller = Depends(caller)) -> dict[str, bool]:
    received.append({"caller": who.name, "body": (await request.body()).decode(),
                     "signature": request.headers.get(SIGNATURE_HEADER)})
    return {"ok": True}


@app.post("/flaky-hook")
async def flaky_hook(request: Request, who: Caller = Depends(caller)) -> dict[str, bool]:
    flaky_calls["count"] += 1
    if flaky_calls["count"] <= 2:
        raise HTTPException(status_code=503, detail="try again")
    return await hook(request, who)


@app.get("/hooks")
def hooks(who: Caller = Depends(caller)) -> list[dict[str, str | None]]:
    return received
