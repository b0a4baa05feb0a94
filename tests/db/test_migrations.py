"""Migrations on fresh databases: upgrade, downgrade, re-upgrade, and model/schema parity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import JSON, inspect, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.audit.service import record_audit
from jarvis.core.identity import Actor
from jarvis.db.engine import Database, create_engine
from jarvis.db.migrate import downgrade, head_revision, schema_state, upgrade
from jarvis.db.models import metadata
from jarvis.db.session import unit_of_work
from jarvis.main import SchemaNotAtHead, create_app
from jarvis.settings import Settings
from tests.conftest import TEST_SECRET_KEY, create_pg_database, drop_pg_database, worker_suffix

TABLES = {
    "users",
    "user_profiles",
    "user_preferences",
    "user_sessions",
    "api_tokens",
    "permissions",
    "persona_permissions",
    "oauth_identities",
    "oauth_login_states",
    "role_personas",
    "agents",
    "agent_versions",
    "audit_trails",
    "config_registry",
    "config_values",
    "config_change_logs",
    "config_snapshots",
    "config_change_requests",
    "business_rules",
    "templates",
    "agent_executions",
    "agent_execution_steps",
    "agent_execution_events",
    "commands",
    "activities",
    "workers",
}
AGENT_INDEXES = {"idx_agents_layer", "idx_agents_persona", "idx_agents_business_function"}
JSON_COLUMNS = {
    ("agents", "config"),
    ("agents", "persona_generation_config"),
    ("agents", "dashboard_template"),
    ("agent_versions", "snapshot"),
    ("config_values", "value"),
    ("config_values", "scope_identifiers"),
    ("config_registry", "value_schema"),
    ("config_snapshots", "content"),
    ("config_change_requests", "payload"),
    ("user_preferences", "settings"),
    ("audit_trails", "before"),
    ("audit_trails", "after"),
}


@pytest.fixture
def fresh_pg_url(postgres_available: bool) -> Iterator[str]:
    """A brand-new, empty PostgreSQL database, dropped afterwards."""
    if not postgres_available:
        pytest.skip("PostgreSQL is unreachable")
    name = f"jarvis_test_mig_{worker_suffix()}"
    url = create_pg_database(name)
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a brand-new, empty database (no schema at all) on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url


async def _inspect(engine: AsyncEngine, fn: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync_conn: fn(inspect(sync_conn)))


async def _tables(engine: AsyncEngine) -> set[str]:
    return set(await _inspect(engine, lambda insp: insp.get_table_names()))


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_upgrade_creates_every_table_and_index(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    try:
        assert not (await _tables(engine)) & TABLES
        await upgrade(fresh_url)

        tables = await _tables(engine)
        assert tables >= TABLES
        assert tables - TABLES == {"alembic_version"}
        indexes = {ix["name"] for ix in await _inspect(engine, lambda i: i.get_indexes("agents"))}
        assert indexes >= AGENT_INDEXES
        # Every table the models declare was created by the migration.
        assert set(metadata.tables) <= tables
    finally:
        await engine.dispose()


async def test_json_columns_are_jsonb_on_postgres_and_json_on_sqlite(fresh_url: str) -> None:
    await upgrade(fresh_url)
    engine = create_engine(fresh_url)
    try:
        for table, column in sorted(JSON_COLUMNS):
            columns = await _inspect(engine, lambda i, t=table: i.get_columns(t))
            [reflected] = [c for c in columns if c["name"] == column]
            if engine.dialect.name == "postgresql":
                assert isinstance(reflected["type"], JSONB), (table, column, reflected["type"])
            else:
                assert isinstance(reflected["type"], JSON), (table, column, reflected["type"])
    finally:
        await engine.dispose()


async def test_models_match_the_migrated_schema(fresh_url: str) -> None:
    await upgrade(fresh_url)
    engine = create_engine(fresh_url)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
        assert differences == []
    finally:
        await engine.dispose()


async def test_compare_metadata_notices_a_schema_drift(fresh_url: str) -> None:
    """The parity check above can fail: a dropped index shows up as a difference."""
    await upgrade(fresh_url)
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP INDEX idx_agents_layer"))
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
        assert any(d[0] == "add_index" and d[1].name == "idx_agents_layer" for d in differences), (
            differences
        )
    finally:
        await engine.dispose()


async def test_downgrade_base_removes_everything_and_upgrade_works_again(fresh_url: str) -> None:
    await upgrade(fresh_url)
    engine = create_engine(fresh_url)
    try:
        await downgrade(fresh_url, "base")
        assert not (await _tables(engine)) & TABLES
        assert (await schema_state(engine)).current is None

        await upgrade(fresh_url)
        assert (await _tables(engine)) >= TABLES
        state = await schema_state(engine)
        assert state.at_head
        assert state.current == head_revision()
    finally:
        await engine.dispose()


async def test_postgres_ledger_guard_survives_a_downgrade_round_trip(fresh_pg_url: str) -> None:
    """Downgrade drops the trigger function (with data in the ledger); re-upgrade restores it."""
    fresh_url = fresh_pg_url
    await upgrade(fresh_url)
    db = Database.from_url(fresh_url)
    try:
        async with unit_of_work(db) as session:
            await record_audit(
                session, actor=Actor.system("mig"), action="x", entity_type="y", entity_id=1
            )
        await downgrade(fresh_url, "base")
        async with db.engine.connect() as conn:
            functions = await conn.scalar(
                text("SELECT count(*) FROM pg_proc WHERE proname = 'audit_trails_append_only'")
            )
        assert functions == 0

        await upgrade(fresh_url)
        async with db.engine.connect() as conn:
            triggers = set(
                (
                    await conn.scalars(
                        text(
                            "SELECT tgname FROM pg_trigger "
                            "WHERE tgrelid = 'audit_trails'::regclass AND NOT tgisinternal"
                        )
                    )
                ).all()
            )
        assert triggers == {"audit_trails_no_change", "audit_trails_no_truncate"}
    finally:
        await db.dispose()


async def test_schema_state_before_and_after_upgrade(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    try:
        before = await schema_state(engine)
        assert before.current is None
        assert not before.at_head
        assert before.head == head_revision()
        problem = before.problem()
        assert problem is not None and "jarvis db upgrade" in problem

        await upgrade(fresh_url)
        after = await schema_state(engine)
        assert after.at_head
        assert after.problem() is None
    finally:
        await engine.dispose()


async def test_app_refuses_to_start_on_an_unmigrated_database(fresh_url: str) -> None:
    app = create_app(Settings(database_url=fresh_url, secret_key=TEST_SECRET_KEY))
    with pytest.raises(SchemaNotAtHead, match="jarvis db upgrade"):
        async with app.router.lifespan_context(app):
            pass  # pragma: no cover - the lifespan refuses before yielding
    await app.state.db.dispose()
