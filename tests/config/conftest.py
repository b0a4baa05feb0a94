"""Fixtures shared by the configuration API tests."""

from __future__ import annotations

import pytest

from jarvis.db.engine import Database
from tests.factories import bearer, create_user, token_for


@pytest.fixture
async def other_admin(db: Database) -> dict[str, str]:
    """Bearer headers of a second admin (four eyes)."""
    user = await create_user(db, persona="admin")
    return bearer(await token_for(db, user))


@pytest.fixture
async def underwriter_headers(db: Database) -> dict[str, str]:
    user = await create_user(db, persona="underwriter")
    return bearer(await token_for(db, user))
