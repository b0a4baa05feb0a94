"""Orchestration: executions, steps, events, commands, activities; agent kinds

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "activities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("persona", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=True),
        sa.Column("execution_id", sa.String(length=36), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("detail", JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activities")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.create_index("idx_activities_created", ["created_at"], unique=False)
        batch_op.create_index(
            "idx_activities_persona_created", ["persona", "created_at"], unique=False
        )

    op.create_table(
        "agent_executions",
        sa.Column("execution_id", sa.String(length=36), nullable=False),
        sa.Column("persona", sa.String(length=64), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("plan", JSON, nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("retry_of", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("layers_done", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'awaiting_approval', 'completed', 'failed', 'cancelled', 'rejected')",
            name=op.f("ck_agent_executions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_agent_executions_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["persona"],
            ["role_personas.key"],
            name=op.f("fk_agent_executions_persona_role_personas"),
            onupdate="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["retry_of"],
            ["agent_executions.execution_id"],
            name=op.f("fk_agent_executions_retry_of_agent_executions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("execution_id", name=op.f("pk_agent_executions")),
    )
    with op.batch_alter_table("agent_executions", schema=None) as batch_op:
        batch_op.create_index("idx_agent_executions_created", ["created_at"], unique=False)
        batch_op.create_index(
            "idx_agent_executions_creator_created", ["created_by_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "idx_agent_executions_persona_created", ["persona", "created_at"], unique=False
        )
        batch_op.create_index("idx_agent_executions_status", ["status"], unique=False)

    op.create_table(
        "agent_execution_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["agent_executions.execution_id"],
            name=op.f("fk_agent_execution_events_execution_id_agent_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_execution_events")),
        sa.UniqueConstraint("execution_id", "seq", name="agent_execution_events_seq_unique"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "agent_execution_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.String(length=36), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("agent_name", sa.String(length=200), nullable=False),
        sa.Column("agent_kind", sa.String(length=64), nullable=False),
        sa.Column("layer", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("input", JSON, nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("token_usage", JSON, nullable=True),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("decision_comment", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'skipped', 'cancelled', 'awaiting_approval', 'rejected')",
            name=op.f("ck_agent_execution_steps_status"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_execution_steps_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["agent_executions.execution_id"],
            name=op.f("fk_agent_execution_steps_execution_id_agent_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_execution_steps")),
        sa.UniqueConstraint("execution_id", "agent_id", name="agent_execution_steps_agent_unique"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("agent_execution_steps", schema=None) as batch_op:
        batch_op.create_index(
            "idx_agent_execution_steps_agent_recent", ["agent_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_agent_execution_steps_execution_id"), ["execution_id"], unique=False
        )

    op.create_table(
        "commands",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("issued_by", sa.String(length=320), nullable=False),
        sa.Column("persona", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("execution_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["agent_executions.execution_id"],
            name=op.f("fk_commands_execution_id_agent_executions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["persona"],
            ["role_personas.key"],
            name=op.f("fk_commands_persona_role_personas"),
            onupdate="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_commands_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.create_index("idx_commands_user_created", ["user_id", "created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_commands_execution_id"), ["execution_id"], unique=False
        )

    # Plain ADD COLUMN: a batch copy of the table would lose the expression index
    # uq_agents_lower_name on SQLite, which cannot reflect it.
    op.add_column(
        "agents", sa.Column("kind", sa.String(length=64), server_default="echo", nullable=False)
    )
    op.add_column(
        "agents", sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.add_column(
        "agents",
        sa.Column("serves_all_personas", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ has it): a batch copy of the table
    # would lose the expression index uq_agents_lower_name, which SQLite cannot reflect.
    for column in ("serves_all_personas", "enabled", "kind"):
        op.execute(f"ALTER TABLE agents DROP COLUMN {column}")

    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commands_execution_id"))
        batch_op.drop_index("idx_commands_user_created")

    op.drop_table("commands")
    with op.batch_alter_table("agent_execution_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_execution_steps_execution_id"))
        batch_op.drop_index("idx_agent_execution_steps_agent_recent")

    op.drop_table("agent_execution_steps")
    op.drop_table("agent_execution_events")
    with op.batch_alter_table("agent_executions", schema=None) as batch_op:
        batch_op.drop_index("idx_agent_executions_status")
        batch_op.drop_index("idx_agent_executions_persona_created")
        batch_op.drop_index("idx_agent_executions_creator_created")
        batch_op.drop_index("idx_agent_executions_created")

    op.drop_table("agent_executions")
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("idx_activities_persona_created")
        batch_op.drop_index("idx_activities_created")

    op.drop_table("activities")
