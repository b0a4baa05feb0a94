"""ConfigService tables; persona colour schemes move into configuration

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTOR = "system:migration-0002"
COLOUR = {
    "type": "string",
    "pattern": (
        r"^(?:#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})"
        r"|rgba?\([ \t\n\r\f\v]*[0-9]{1,3}[ \t\n\r\f\v]*,[ \t\n\r\f\v]*[0-9]{1,3}"
        r"[ \t\n\r\f\v]*,[ \t\n\r\f\v]*[0-9]{1,3}[ \t\n\r\f\v]*"
        r"(?:,[ \t\n\r\f\v]*(?:0|1|0?\.[0-9]+)[ \t\n\r\f\v]*)?\))$"
    ),
}
NAMES = ["primary", "secondary", "accent", "background", "glassmorphism"]
DEFAULT_COLOURS = {
    "primary": "#3b82f6",
    "secondary": "#1e40af",
    "accent": "#60a5fa",
    "background": "#0f172a",
    "glassmorphism": "rgba(15, 23, 42, 0.7)",
}


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(tzinfo=None) if op.get_bind().dialect.name == "sqlite" else now


registry = sa.table(
    "config_registry",
    sa.column("key", sa.String),
    sa.column("description", sa.Text),
    sa.column("value_schema", JSON),
    sa.column("default_value", JSON),
    sa.column("allowed_scopes", JSON),
    sa.column("is_secret", sa.Boolean),
    sa.column("requires_approval", sa.Boolean),
    sa.column("revision", sa.Integer),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("updated_by", sa.String),
)
values = sa.table(
    "config_values",
    sa.column("config_key", sa.String),
    sa.column("value", JSON),
    sa.column("scope_identifiers", JSON),
    sa.column("persona", sa.String),
    sa.column("scope_key", sa.String),
    sa.column("scope_rank", sa.SmallInteger),
    sa.column("effective_from", sa.DateTime(timezone=True)),
    sa.column("version", sa.Integer),
    sa.column("is_active", sa.Boolean),
    sa.column("created_by", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.create_table(
        "business_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_rules")),
        sa.UniqueConstraint("name", "version", name="business_rules_name_version_unique"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "config_change_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_key", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("scope_identifiers", JSON, nullable=True),
        sa.Column("persona", sa.String(length=64), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("workflow_id", sa.Integer(), nullable=True),
        sa.Column("old_value", JSON, nullable=True),
        sa.Column("new_value", JSON, nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("value_id", sa.Integer(), nullable=True),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("effective_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("performed_by", sa.String(length=320), nullable=False),
        sa.Column("performed_by_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("change_request_id", sa.Integer(), nullable=True),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_change_logs")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("config_change_logs", schema=None) as batch_op:
        batch_op.create_index("idx_config_change_logs_key", ["config_key", "id"], unique=False)

    op.create_table(
        "config_registry",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("value_schema", JSON, nullable=False),
        sa.Column("default_value", JSON, nullable=False),
        sa.Column("allowed_scopes", JSON, nullable=False),
        sa.Column("is_secret", sa.Boolean(), nullable=False),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_config_registry")),
    )
    op.create_table(
        "config_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", JSON, nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_snapshots")),
        sa.UniqueConstraint("name", name=op.f("uq_config_snapshots_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint("name", "version", name="templates_name_version_unique"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "config_change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_key", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=320), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("applied_value_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'withdrawn')",
            name=op.f("ck_config_change_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["config_key"],
            ["config_registry.key"],
            name=op.f("fk_config_change_requests_config_key_config_registry"),
            onupdate="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_change_requests")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("config_change_requests", schema=None) as batch_op:
        batch_op.create_index("idx_config_change_requests_status", ["status", "id"], unique=False)

    op.create_table(
        "config_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_key", sa.String(length=200), nullable=False),
        sa.Column("value", JSON, nullable=False),
        sa.Column("scope_identifiers", JSON, nullable=False),
        sa.Column("persona", sa.String(length=64), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("workflow_id", sa.Integer(), nullable=True),
        sa.Column("scope_key", sa.String(length=120), nullable=False),
        sa.Column("scope_rank", sa.SmallInteger(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to > effective_from",
            name=op.f("ck_config_values_effective_window"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_config_values_version_positive")),
        sa.ForeignKeyConstraint(
            ["config_key"],
            ["config_registry.key"],
            name=op.f("fk_config_values_config_key_config_registry"),
            onupdate="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_values")),
        sa.UniqueConstraint(
            "config_key", "version", "scope_key", name="config_values_key_version_scope_unique"
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("config_values", schema=None) as batch_op:
        batch_op.create_index(
            "idx_config_values_resolve", ["config_key", "scope_rank", "version"], unique=False
        )
        batch_op.create_index(
            "idx_config_values_schedule", ["config_key", "effective_from"], unique=False
        )

    # Persona colour schemes become persona-scoped values of ``persona.colors``.
    conn = op.get_bind()
    now = _now()
    op.bulk_insert(
        registry,
        [
            {
                "key": "persona.colors",
                "description": "A persona's colour scheme (the seed's personaColors), applied "
                "to every page through CSS custom properties.",
                "value_schema": {
                    "type": "object",
                    "properties": {name: COLOUR for name in NAMES},
                    "required": NAMES,
                    "additionalProperties": False,
                },
                "default_value": DEFAULT_COLOURS,
                "allowed_scopes": ["global", "persona"],
                "is_secret": False,
                "requires_approval": False,
                "revision": 1,
                "created_at": now,
                "updated_at": now,
                "updated_by": ACTOR,
            }
        ],
    )
    personas = sa.table(
        "role_personas", sa.column("key", sa.String), sa.column("color_scheme", JSON)
    )
    rows = conn.execute(sa.select(personas.c.key, personas.c.color_scheme)).all()
    schemes = [
        {
            "config_key": "persona.colors",
            "value": scheme if isinstance(scheme, dict) else json.loads(scheme),
            "scope_identifiers": {"persona": key},
            "persona": key,
            "scope_key": f"{key}//",
            "scope_rank": 1,
            "effective_from": now,
            "version": 1,
            "is_active": True,
            "created_by": ACTOR,
            "created_at": now,
        }
        for key, scheme in rows
        if scheme
    ]
    if schemes:
        op.bulk_insert(values, schemes)
    with op.batch_alter_table("role_personas", schema=None) as batch_op:
        batch_op.drop_column("color_scheme")


def downgrade() -> None:
    with op.batch_alter_table("role_personas", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "color_scheme",
                JSON,
                nullable=False,
                server_default=sa.text(f"'{json.dumps(DEFAULT_COLOURS)}'"),
            )
        )
    conn = op.get_bind()
    personas = sa.table(
        "role_personas", sa.column("key", sa.String), sa.column("color_scheme", JSON)
    )
    latest = conn.execute(
        sa.text(
            "SELECT persona, value FROM config_values WHERE config_key = 'persona.colors' "
            "AND is_active AND persona IS NOT NULL AND agent_id IS NULL AND workflow_id IS NULL "
            "ORDER BY version"
        )
    ).all()
    for persona, value in latest:  # ascending versions: the last write per persona wins
        scheme = value if isinstance(value, dict) else json.loads(value)
        conn.execute(personas.update().where(personas.c.key == persona).values(color_scheme=scheme))
    with op.batch_alter_table("role_personas", schema=None) as batch_op:
        batch_op.alter_column("color_scheme", server_default=None)
    for index, table in (
        ("idx_config_values_resolve", "config_values"),
        ("idx_config_values_schedule", "config_values"),
        ("idx_config_change_requests_status", "config_change_requests"),
        ("idx_config_change_logs_key", "config_change_logs"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "config_values",
        "config_change_requests",
        "templates",
        "config_snapshots",
        "config_registry",
        "config_change_logs",
        "business_rules",
    ):
        op.drop_table(table)
