"""``jarvis worker``: run executions queued on Redis (see orchestration/worker.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from jarvis.cli.common import existing_database, fail, run, settings
from jarvis.kit.logging import configure_logging


def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, max=1000, help="Executions this worker runs at once")
    ] = 4,
    grace: Annotated[
        float,
        typer.Option(
            min=0,
            max=3600,
            help="On SIGTERM, seconds to let running executions finish before handing "
            "them back to the queue",
        ),
    ] = 30.0,
) -> None:
    """Run executions from the queue (needs JARVIS_REDIS_URL); stop with SIGTERM."""
    cfg = settings()
    if not cfg.redis_url:
        fail("jarvis worker needs JARVIS_REDIS_URL: executions are queued in Redis")
    configure_logging(cfg.log_level, json=cfg.is_production)

    async def check() -> None:
        async with existing_database():
            pass

    run(check)

    from jarvis.orchestration.worker import serve_worker

    run(lambda: serve_worker(cfg, concurrency=concurrency, grace=grace))
