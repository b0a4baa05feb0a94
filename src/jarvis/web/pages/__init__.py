"""Page routers, one module per area; ``PAGE_ROUTERS`` is what the app includes."""

from __future__ import annotations

from jarvis.web.pages import agents, config, dashboard, executions, session

PAGE_ROUTERS = [
    session.router,
    dashboard.router,
    agents.router,
    config.router,
    executions.router,
]
