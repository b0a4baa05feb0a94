"""Executions by time and status in one index (the dashboard's executions per hour)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # (created_at, status) serves every query the (created_at) index served, and lets the
    # per-hour counts by status read the index alone.
    op.create_index(
        "idx_agent_executions_created_status",
        "agent_executions",
        ["created_at", "status"],
        unique=False,
    )
    op.drop_index("idx_agent_executions_created", table_name="agent_executions")


def downgrade() -> None:
    op.create_index(
        "idx_agent_executions_created", "agent_executions", ["created_at"], unique=False
    )
    op.drop_index("idx_agent_executions_created_status", table_name="agent_executions")
