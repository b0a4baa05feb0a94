"""Every refused request (403) is appended to the audit ledger.

Runs from the error handler, after the request's own transaction has rolled back, in a
transaction of its own: the refusal is recorded even though the request changed nothing.
"""

from __future__ import annotations

from starlette.requests import Request

from jarvis.audit.service import record_audit
from jarvis.core.identity import Actor, Principal
from jarvis.db.session import DATABASE, unit_of_work
from jarvis.errors import JarvisError

FORBIDDEN_ACTION = "auth.forbidden"


async def record_refusal(request: Request, exc: JarvisError) -> None:
    """Audit a 403: who asked for what, and why it was refused."""
    if exc.status != 403:
        return
    principal: Principal | None = getattr(request.state, "principal", None)
    actor = principal.actor if principal is not None else Actor.system("anonymous")
    after = {
        "method": request.method,
        "path": request.url.path,
        "reason": exc.detail,
        "ipAddress": request.client.host if request.client else None,
    }
    if principal is not None:
        after.update(persona=principal.persona, via=principal.via)
    async with unit_of_work(DATABASE.get(request)) as session:
        await record_audit(
            session,
            actor=actor,
            action=FORBIDDEN_ACTION,
            entity_type="route",
            entity_id=f"{request.method} {request.url.path}"[:100],
            after=after,
        )
