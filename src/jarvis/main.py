"""The ASGI application: ``create_app()`` wires settings, database, routes and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from jarvis import __version__
from jarvis.agents.listing import AgentPageCache
from jarvis.agents.routes import router as agents_router
from jarvis.auth.routes import router as auth_router
from jarvis.db.engine import Database
from jarvis.db.migrate import schema_state
from jarvis.errors import install_error_handlers
from jarvis.health import router as health_router
from jarvis.kit.asgi import BodySizeLimit, RejectNulInUrl
from jarvis.kit.logging import configure_logging
from jarvis.openapi import problem_openapi
from jarvis.personas.routes import router as personas_router
from jarvis.settings import Settings, get_settings


class SchemaNotAtHead(RuntimeError):
    """The database schema is behind the code; the message says how to fix it."""


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    check_schema: bool = True,
) -> FastAPI:
    """Build the application. ``database`` lets tests share an engine."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.is_production)
    db = database or Database.from_url(settings.database_url)
    owns_db = database is None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            if check_schema:
                problem = (await schema_state(db.engine)).problem()
                if problem is not None:
                    raise SchemaNotAtHead(problem)
            yield
        finally:
            if owns_db:
                await db.dispose()

    app = FastAPI(
        title="JARVIS",
        version=__version__,
        summary="Governed AI agents for insurance operations, in six layers",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.secret_key = settings.resolve_secret_key()
    app.state.db = db
    app.state.agent_page_cache = AgentPageCache(settings.agent_list_cache_seconds)
    install_error_handlers(app)
    app.openapi = lambda: problem_openapi(app)  # type: ignore[method-assign]
    for router in (health_router, auth_router, agents_router, personas_router):
        app.include_router(router)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    app.add_middleware(RejectNulInUrl)
    return app


def app() -> FastAPI:
    """Factory for ``uvicorn --factory jarvis.main:app``."""
    return create_app()
