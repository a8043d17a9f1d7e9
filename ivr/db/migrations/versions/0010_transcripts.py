"""Transcripts of the name and reason recordings (text sealed), and the caller's language
and red-flag topic on the call.

Revision ID: 0010_transcripts
Revises: 0009_cluster
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_transcripts"
down_revision = "0009_cluster"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(32), sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("engine_version", sa.String(120), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("audio_seconds", sa.Float(), nullable=True),
        sa.Column("cpu_seconds", sa.Float(), nullable=True),
        sa.Column("wall_seconds", sa.Float(), nullable=True),
        sa.Column("red_flag_topic", sa.String(32), nullable=True),
        sa.Column("red_flag", sa.Text(), nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_transcripts_call_id", "transcripts", ["call_id"])
    op.create_index("ix_transcripts_call_field", "transcripts", ["call_id", "field"],
                    unique=True)
    op.add_column("calls", sa.Column("language", sa.String(16), nullable=True))
    op.add_column("calls", sa.Column("red_flag_topic", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("calls", "red_flag_topic")
    op.drop_column("calls", "language")
    op.drop_index("ix_transcripts_call_field", table_name="transcripts")
    op.drop_index("ix_transcripts_call_id", table_name="transcripts")
    op.drop_table("transcripts")
