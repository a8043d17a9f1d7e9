"""Portal accounts: users, server-side sessions, API tokens (ivr.accounts.models).

Revision ID: 0008_portal
Revises: 0007_sealed_columns
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_portal"
down_revision = "0007_sealed_columns"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "portal_users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(40), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=True),
        sa.Column("clinician_id", sa.String(64), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("password_changed_at", UTC_TS, nullable=False),
        sa.Column("disabled_at", UTC_TS, nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTC_TS, nullable=True),
        sa.Column("last_login_at", UTC_TS, nullable=True),
    )
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(32),
                  sa.ForeignKey("portal_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("last_seen_at", UTC_TS, nullable=False),
        sa.Column("expires_at", UTC_TS, nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("second_factor_ok", sa.Boolean(), nullable=False),
        sa.Column("ended_at", UTC_TS, nullable=True),
    )
    op.create_index("ix_portal_sessions_user_id", "portal_sessions", ["user_id"])
    op.create_table(
        "portal_api_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("user_id", sa.String(32),
                  sa.ForeignKey("portal_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("expires_at", UTC_TS, nullable=True),
        sa.Column("last_used_at", UTC_TS, nullable=True),
        sa.Column("revoked_at", UTC_TS, nullable=True),
    )
    op.create_index("ix_portal_api_tokens_user_id", "portal_api_tokens", ["user_id"])
    op.create_index("ix_portal_api_tokens_user_revoked", "portal_api_tokens",
                    ["user_id", "revoked_at"])


def downgrade() -> None:
    op.drop_table("portal_api_tokens")
    op.drop_table("portal_sessions")
    op.drop_table("portal_users")
