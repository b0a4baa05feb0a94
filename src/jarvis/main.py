"""The ASGI application: ``create_app()`` wires settings, database, routes and errors."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from jarvis import __version__
from jarvis.agents.kind_routes import router as agent_kinds_router
from jarvis.agents.listing import AGENT_PAGE_CACHE, AgentPageCache
from jarvis.agents.routes import router as agents_router
from jarvis.analytics.routes import router as activities_router
from jarvis.audit.routes import router as audit_router
from jarvis.auth.credentials import CREDENTIALS, Credentials
from jarvis.auth.denials import record_refusal
from jarvis.auth.dependencies import request_guard, resolve_principal
from jarvis.auth.sessions.routes import router as sessions_router
from jarvis.auth.sessions.signin_routes import router as auth_router
from jarvis.auth.sessions.sweeper import SessionSweeper
from jarvis.auth.sso.routes import router as oauth_router
from jarvis.auth.tokens.routes import router as tokens_router
from jarvis.auth.users.routes import router as users_router
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.config.dependencies import CONFIG
from jarvis.config.routes import router as config_router
from jarvis.config.rule_routes import router as rules_router
from jarvis.config.service import ConfigService
from jarvis.config.snapshot_routes import router as snapshots_router
from jarvis.core.guards import IDENTITY
from jarvis.db.engine import Database
from jarvis.db.migrate import schema_state
from jarvis.db.session import DATABASE, unit_of_work
from jarvis.errors import ERROR_OBSERVER, install_error_handlers
from jarvis.health import router as health_router
from jarvis.kit.asgi import BodySizeLimit, RejectNulInUrl
from jarvis.kit.bus import BUS, EventBus, create_bus
from jarvis.kit.headers import docs_csp, install_security_headers
from jarvis.kit.logging import configure_logging
from jarvis.kit.ratelimit import RATE_LIMITER, RateLimiter
from jarvis.llm.providers import Providers
from jarvis.openapi import problem_openapi
from jarvis.orchestration.dependencies import DISPATCHER, ENGINE
from jarvis.orchestration.dispatcher import Dispatcher, InProcessDispatcher, TaskiqDispatcher
from jarvis.orchestration.engine import Engine
from jarvis.orchestration.routes import router as executions_router
from jarvis.personas.grants import ensure_catalogue
from jarvis.personas.routes import router as personas_router
from jarvis.realtime.hub import REALTIME, RealtimeHub
from jarvis.realtime.routes import router as events_router
from jarvis.realtime.ws import router as realtime_router
from jarvis.settings import SECRET_KEY, SETTINGS, Settings, get_settings
from jarvis.web.setup import install_web
from jarvis.wiring import config_service


def create_dispatcher(
    settings: Settings, engine: Engine, db: Database, config: ConfigService
) -> Dispatcher:
    """Taskiq workers when Redis is configured (unless told otherwise), this process else."""
    wanted = settings.dispatcher
    if wanted == "taskiq" or (wanted == "auto" and settings.redis_url):
        if not settings.redis_url:
            raise ValueError("JARVIS_DISPATCHER=taskiq needs JARVIS_REDIS_URL")
        return TaskiqDispatcher(
            settings.redis_url,
            settings.taskiq_queue,
            lease_seconds=settings.execution_lease_seconds,
        )
    return InProcessDispatcher(engine, db, config)


# Allocations between young collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


class SchemaNotAtHead(RuntimeError):
    """The database schema is behind the code; the message says how to fix it."""


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    bus: EventBus | None = None,
    check_schema: bool = True,
) -> FastAPI:
    """Build the application. ``database`` and ``bus`` let tests share them."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.is_production)
    db = database or settings.database()
    owns_db = database is None
    event_bus = bus if bus is not None else create_bus(settings.redis_url)
    owns_bus = bus is None
    config = config_service(
        db,
        bus=event_bus,
        cache_size=settings.config_cache_size,
        poll_seconds=settings.config_poll_seconds,
    )
    engine = Engine(
        db,
        config,
        event_bus,
        providers=Providers.from_settings(settings),
        lease_seconds=settings.execution_lease_seconds,
        max_worker_losses=settings.execution_max_worker_losses,
    )
    dispatcher = create_dispatcher(settings, engine, db, config)
    realtime = RealtimeHub(db, event_bus, heartbeat_seconds=settings.ws_heartbeat_seconds)
    secret_key = settings.resolve_secret_key()
    credentials = Credentials(
        db, event_bus, secret_key=secret_key, cache_seconds=settings.auth_cache_seconds
    )
    rate_limiter = RateLimiter(settings.redis_url)
    session_sweeper = SessionSweeper(db)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            if check_schema:
                problem = (await schema_state(db.engine)).problem()
                if problem is not None:
                    raise SchemaNotAtHead(problem)
                async with unit_of_work(db) as session:
                    await ensure_builtin_registry(session)
                    await ensure_catalogue(session)
            await config.start()
            await credentials.start()
            if check_schema:
                await session_sweeper.start()
            await realtime.start()
            if check_schema:
                await dispatcher.start()
            # Everything built so far lives as long as the process: keep it out of the
            # collector's full passes, whose pauses would delay every live event.
            gc.freeze()
            # Fewer, larger young collections: each one that reaches the old generation
            # walks every live connection's objects (hundreds of ms with 1,000 sockets).
            gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
            yield
        finally:
            await realtime.close()
            await dispatcher.close()
            await session_sweeper.close()
            await credentials.close()
            await rate_limiter.close()
            await config.close()
            if owns_bus:
                await event_bus.close()
            if owns_db:
                await db.dispose()

    app = FastAPI(
        title="JARVIS",
        version=__version__,
        summary="Governed AI agents for insurance operations, in six layers",
        lifespan=lifespan,
        # ReDoc injects <style> elements, which the CSP (no 'unsafe-inline') refuses; the
        # Swagger UI at /docs works under it.
        redoc_url=None,
        # Before every route: resolve the caller, check CSRF, count the request.
        dependencies=[Depends(request_guard)],
    )
    # What requests read, each through the key its domain declares (jarvis.kit.app_state).
    SETTINGS.put(app, settings)
    SECRET_KEY.put(app, secret_key)
    CREDENTIALS.put(app, credentials)
    # Who sent a request, for the route guards of every domain (jarvis.core.guards).
    IDENTITY.put(app, resolve_principal)
    RATE_LIMITER.put(app, rate_limiter)
    # Every refusal (403) is audited, after the request's transaction has ended.
    ERROR_OBSERVER.put(app, record_refusal)
    DATABASE.put(app, db)
    BUS.put(app, event_bus)
    CONFIG.put(app, config)
    ENGINE.put(app, engine)
    DISPATCHER.put(app, dispatcher)
    REALTIME.put(app, realtime)
    AGENT_PAGE_CACHE.put(app, AgentPageCache(settings.agent_list_cache_seconds))
    install_error_handlers(app)
    app.openapi = lambda: problem_openapi(app)  # type: ignore[method-assign]
    for router in (
        health_router,
        auth_router,
        oauth_router,
        sessions_router,
        tokens_router,
        users_router,
        audit_router,
        agents_router,
        agent_kinds_router,
        personas_router,
        config_router,
        snapshots_router,
        rules_router,
        executions_router,
        events_router,
        activities_router,
        realtime_router,
    ):
        app.include_router(router)
    # Pages last: their HTML error rendering wraps the API's problem handlers.
    install_web(app)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    app.add_middleware(RejectNulInUrl)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        # Closed unless origins are named; credentials (cookies) only for those origins.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-CSRF-Token", "If-Match"],
            max_age=600,
        )
    # Around everything, Starlette's error middleware included: every response, a 500 too,
    # carries the security headers.
    install_security_headers(
        app, hsts=settings.is_production, per_path=docs_csp(app.openapi_url, app.title)
    )
    return app


def app() -> FastAPI:
    """Factory for ``uvicorn --factory jarvis.main:app``."""
    return create_app()
