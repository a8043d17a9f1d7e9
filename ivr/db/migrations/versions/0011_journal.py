"""The journal entries already in the record (ivr.records.journal): replayed once only.

Revision ID: 0011_journal
Revises: 0010_transcripts
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_journal"
down_revision = "0010_transcripts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal_applied",
        sa.Column("entry_id", sa.String(32), primary_key=True),
        sa.Column("call_id", sa.String(32), sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_journal_applied_call_id", "journal_applied", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_journal_applied_call_id", "journal_applied")
    op.drop_table("journal_applied")
