"""Execution leases (crash recovery across workers) and the workers table

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): keeps the table's other indexes untouched on SQLite.
    op.add_column("agent_executions", sa.Column("lease_owner", sa.String(length=64)))
    op.add_column("agent_executions", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    op.add_column(
        "agent_executions",
        sa.Column("worker_losses", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index(
        "idx_agent_executions_status_lease",
        "agent_executions",
        ["status", "lease_expires_at"],
        unique=False,
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workers_heartbeat_at"), ["heartbeat_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workers_heartbeat_at"))
    op.drop_table("workers")
    op.drop_index("idx_agent_executions_status_lease", table_name="agent_executions")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ has it), as 0003 does.
    for column in ("worker_losses", "lease_expires_at", "lease_owner"):
        op.execute(f"ALTER TABLE agent_executions DROP COLUMN {column}")
