"""Morning reports: one row per practice and night, claimed by insert (ivr.documents).

Revision ID: 0004_reports
Revises: 0003_oncall
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_reports"
down_revision = "0003_oncall"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("night", sa.String(10), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=False),
        sa.Column("lease_expires_at", UTC_TS, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("made_at", UTC_TS, nullable=True),
        sa.Column("covers_from", UTC_TS, nullable=False),
        sa.Column("closing", UTC_TS, nullable=True),
        sa.Column("opening", UTC_TS, nullable=False),
        sa.Column("call_count", sa.Integer(), nullable=True),
        sa.Column("needs_action", sa.Integer(), nullable=True),
        sa.Column("pdf_path", sa.Text(), nullable=True),
        sa.Column("json_path", sa.Text(), nullable=True),
        sa.Column("deliveries", sa.Text(), nullable=False),
    )
    op.create_index("ix_reports_practice_night", "reports", ["practice_id", "night"],
                    unique=True)
    op.create_index("ix_reports_practice_opening", "reports", ["practice_id", "opening"])


def downgrade() -> None:
    op.drop_table("reports")
