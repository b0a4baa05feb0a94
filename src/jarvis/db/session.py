"""Units of work: one transaction, committed on success and rolled back on error.

The request (through ``request_session``) or the command/worker (through
``unit_of_work``) owns the transaction; services only add, flush and query.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.db.engine import Database
from jarvis.kit.app_state import StateKey

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ON_COMMIT = "jarvis.on_commit"

CommitCallback = Callable[[], Awaitable[None] | None]


def after_commit(session: AsyncSession, callback: CommitCallback) -> None:
    """Run ``callback`` once ``session``'s transaction has committed; drop it on rollback.

    This is how side effects (cache invalidation, events, queued jobs) wait for the data
    they describe to be stored.
    """
    session.info.setdefault(_ON_COMMIT, []).append(callback)


@asynccontextmanager
async def unit_of_work(db: Database, *, write: bool = True) -> AsyncIterator[AsyncSession]:
    """Yield a session whose transaction commits when the block ends without error."""
    factory = db.writer if write else db.reader
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            session.info.pop(_ON_COMMIT, None)
            await session.rollback()
            raise
        for callback in session.info.pop(_ON_COMMIT, []):
            result = callback()
            if inspect.isawaitable(result):
                await result


DATABASE: StateKey[Database] = StateKey("db", "the database")


def get_database(request: Request) -> Database:
    """The application's database, set up by ``create_app``."""
    return DATABASE.get(request)


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request's session (use with ``scope="function"``).

    Unsafe methods get a writing transaction; the commit happens before the response is
    sent, so a client never sees success for a change that was not stored.
    """
    db = get_database(request)
    async with unit_of_work(db, write=request.method not in SAFE_METHODS) as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(request_session, scope="function")]
Db = Annotated[Database, Depends(get_database)]
