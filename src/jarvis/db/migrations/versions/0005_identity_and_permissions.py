"""Identity and security: permissions granted to personas, sign-in lockout, token scopes,
OAuth/OIDC identities and pending sign-ins

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")

# The catalogue as it stood when this migration was written (jarvis.auth.permissions
# keeps it in step afterwards, at every start).
PERMISSIONS = {
    "agents:write": "Create, edit, delete and restore agents.",
    "executions:create": "Run commands (start executions) and cancel one's own.",
    "executions:approve": "Approve or reject executions paused for a human decision.",
    "config:write": "Set configuration values and registry keys, save rules and templates, "
    "take and restore snapshots.",
    "config:approve": "Approve or reject configuration change requests.",
    "governance:write": "Change governance records (models, risk assessments, approval status).",
    "personas:write": "Register personas.",
    "users:admin": "Manage users, their sessions and tokens, and what each persona may do.",
    "audit:read": "Read the audit ledger.",
}
# What the seed personas may do when they already exist (fresh databases get the same
# through auth.default_permissions when the personas are registered).
GRANTS = {
    "underwriter": ["executions:create", "executions:approve"],
    "it_support": ["executions:create", "executions:approve", "agents:write"],
}
DEFAULT_GRANTS = ["executions:create"]


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("failed_login_count", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("users", sa.Column("locked_until", sa.DateTime(timezone=True)))
    op.add_column("users", sa.Column("password_changed_at", sa.DateTime(timezone=True)))
    op.add_column("user_sessions", sa.Column("via", sa.String(length=32)))
    op.add_column("api_tokens", sa.Column("scopes", JSON))

    permissions = op.create_table(
        "permissions",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_permissions")),
    )
    op.create_table(
        "persona_permissions",
        sa.Column("persona_key", sa.String(length=64), nullable=False),
        sa.Column("permission", sa.String(length=64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(
            ["permission"],
            ["permissions.name"],
            name=op.f("fk_persona_permissions_permission_permissions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["persona_key"],
            ["role_personas.key"],
            name=op.f("fk_persona_permissions_persona_key_role_personas"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("persona_key", "permission", name=op.f("pk_persona_permissions")),
    )
    op.create_table(
        "oauth_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_oauth_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_identities")),
        sa.UniqueConstraint(
            "provider", "subject", name=op.f("uq_oauth_identities_provider_subject")
        ),
    )
    op.create_index(
        op.f("ix_oauth_identities_user_id"), "oauth_identities", ["user_id"], unique=False
    )
    op.create_table(
        "oauth_login_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=True),
        sa.Column("next_path", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_login_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oauth_login_states_state_hash")),
    )
    op.create_index(
        op.f("ix_oauth_login_states_expires_at"),
        "oauth_login_states",
        ["expires_at"],
        unique=False,
    )

    op.bulk_insert(permissions, [{"name": n, "description": d} for n, d in PERMISSIONS.items()])
    # Personas that exist already keep working: the seed personas get their usual grants,
    # any other non-admin persona the default set (admin holds every permission implicitly).
    bind = op.get_bind()
    keys = [row[0] for row in bind.execute(sa.text("SELECT key FROM role_personas"))]
    grants = [
        {"persona_key": key, "permission": permission}
        for key in keys
        if key != "admin"
        for permission in GRANTS.get(key, DEFAULT_GRANTS)
    ]
    for grant in grants:
        bind.execute(
            sa.text(
                "INSERT INTO persona_permissions (persona_key, permission, granted_at, granted_by)"
                " VALUES (:persona_key, :permission, CURRENT_TIMESTAMP, 'migration 0005')"
            ),
            grant,
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_oauth_login_states_expires_at"), table_name="oauth_login_states")
    op.drop_table("oauth_login_states")
    op.drop_index(op.f("ix_oauth_identities_user_id"), table_name="oauth_identities")
    op.drop_table("oauth_identities")
    op.drop_table("persona_permissions")
    op.drop_table("permissions")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ has it), as 0003 does.
    op.execute("ALTER TABLE api_tokens DROP COLUMN scopes")
    op.execute("ALTER TABLE user_sessions DROP COLUMN via")
    for column in ("password_changed_at", "locked_until", "failed_login_count"):
        op.execute(f"ALTER TABLE users DROP COLUMN {column}")
