"""``jarvis serve``: check the schema, make sure an admin exists, run uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from jarvis.auth.service import AdminBootstrap, ensure_admin
from jarvis.cli.common import console, database, fail, run, settings
from jarvis.db.migrate import schema_state
from jarvis.db.session import unit_of_work


def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default JARVIS_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default JARVIS_PORT)")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development)")] = False,
) -> None:
    """Serve the API (and, later, the pages) with uvicorn."""
    cfg = settings()
    host = host or cfg.host
    port = port or cfg.port
    try:
        cfg.resolve_secret_key()
    except Exception as exc:
        fail(str(exc))

    async def prepare() -> tuple[str | None, AdminBootstrap | None]:
        async with database() as db:
            problem = (await schema_state(db.engine)).problem()
            if problem is not None:
                return problem, None
            async with unit_of_work(db) as session:
                admin = await ensure_admin(
                    session,
                    email=cfg.admin_email,
                    password=cfg.admin_password.get_secret_value() if cfg.admin_password else None,
                    generate=not cfg.is_production,
                )
            return None, admin

    problem, admin = run(prepare)
    if problem is not None:
        fail(f"refusing to start: {problem}")
    url = f"http://{host}:{port}"
    console.print(f"JARVIS is serving on [bold]{url}[/]  (API docs: {url}/docs)")
    if admin is None:
        console.print(
            "no admin account exists: set JARVIS_ADMIN_PASSWORD or run "
            "`jarvis users create --persona admin`"
        )
    elif admin.generated_password:
        console.print(
            f"admin login: [bold]{admin.user.email}[/] password: "
            f"[bold]{admin.generated_password}[/] (shown once)"
        )
    else:
        console.print(
            f"admin login: [bold]{admin.user.email}[/] (password as set; "
            f"`jarvis users set-password --email {admin.user.email}` sets a new one)"
        )
    uvicorn.run(
        "jarvis.main:app",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        log_level=cfg.log_level.lower(),
        proxy_headers=True,
    )
