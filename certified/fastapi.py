"""FastAPI dependency for the authenticated caller.

Usage::

    from fastapi import Depends
    from certified.fastapi import Caller, caller

    @app.get("/jobs")
    def jobs(who: Caller = Depends(caller)) -> list[Job]:
        return [j for j in all_jobs() if j.owner == who.name]

It works for apps run with ``certified serve`` / ``certified.serve.serve``, which put the caller into
the ASGI scope once its certificate's issuer has vouched for its name (see ``certified.authenticate``).
Without one it answers 403. Admin checks use ``who.is_admin(admins)``: only names the server's own CA
signed can be admins.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from certified.caller import Caller, caller_from_scope

__all__ = ["Caller", "caller"]


def caller(request: Request) -> Caller:
    """FastAPI dependency: the caller named by the verified, vouched-for TLS client certificate, or 403."""
    who = caller_from_scope(request.scope)
    if who is None:
        raise HTTPException(status_code=403, detail="no verified TLS client certificate on this connection")
    return who
