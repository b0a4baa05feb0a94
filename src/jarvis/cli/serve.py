"""``jarvis serve``: check the schema, make sure an admin exists, run uvicorn."""

from __future__ import annotations

import contextlib
import socket
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI

from jarvis.auth.bootstrap import AdminBootstrap
from jarvis.cli.common import (
    bootstrap_admin,
    console,
    database,
    fail,
    print_admin_login,
    run,
    settings,
)
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.db.migrate import schema_state
from jarvis.db.session import unit_of_work
from jarvis.main import create_app
from jarvis.realtime.ws import uvicorn_ws_options
from jarvis.wiring import config_service


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
            config = config_service(db, poll_seconds=0)
            async with unit_of_work(db) as session:
                await ensure_builtin_registry(session)
                return None, await bootstrap_admin(session, config)

    problem, admin = run(prepare)
    if problem is not None:
        fail(f"refusing to start: {problem}")
    url = f"http://{host}:{port}"
    console.print(
        f"JARVIS is serving on [bold]{url}[/]: open it in a browser and sign in  "
        f"(API docs: {url}/docs)"
    )
    print_admin_login(admin)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": cfg.log_level.lower(),
        "proxy_headers": True,
        # Protocol pings every heartbeat interval decide whether a WebSocket client lives.
        **uvicorn_ws_options(cfg.ws_heartbeat_seconds),
    }
    if reload:
        uvicorn.run("jarvis.main:app", factory=True, reload=True, **options)
        return
    app = create_app(cfg)
    _Server(uvicorn.Config(app, **options), app).run()


class _Server(uvicorn.Server):
    """uvicorn, telling WebSocket and SSE clients the server is going away (1001) before
    its own shutdown closes their connections."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.jarvis = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(Exception):
            await self.jarvis.state.realtime.close()
        await super().shutdown(sockets)
