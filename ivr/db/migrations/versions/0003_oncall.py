"""Reaching the on-call: clinician legs, call-backs until acknowledged, call outcome.

Revision ID: 0003_oncall
Revises: 0002_deliveries
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_oncall"
down_revision = "0002_deliveries"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("oncall_outcome", sa.String(24), nullable=True))
        batch.add_column(sa.Column("oncall_clinician", sa.String(64), nullable=True))

    op.create_table(
        "oncall_callbacks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("call_id", sa.String(32), sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("next_attempt_at", UTC_TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=False),
        sa.Column("promised_by", UTC_TS, nullable=True),
        sa.Column("acknowledged_at", UTC_TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(64), nullable=True),
        sa.Column("acknowledged_via", sa.String(16), nullable=True),
    )
    op.create_index("ix_oncall_callbacks_call_id", "oncall_callbacks", ["call_id"],
                    unique=True)
    op.create_index("ix_oncall_callbacks_practice_id", "oncall_callbacks", ["practice_id"])
    op.create_index("ix_oncall_callbacks_status_next", "oncall_callbacks",
                    ["status", "next_attempt_at"])

    op.create_table(
        "oncall_legs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("call_id", sa.String(32), sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("callback_id", sa.String(32),
                  sa.ForeignKey("oncall_callbacks.id", ondelete="CASCADE"), nullable=True),
        sa.Column("attempt_no", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("clinician_id", sa.String(64), nullable=True),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(64), nullable=True),
        sa.Column("placed_at", UTC_TS, nullable=False),
        sa.Column("answered_at", UTC_TS, nullable=True),
        sa.Column("ended_at", UTC_TS, nullable=True),
        sa.Column("ring_ms", sa.Integer(), nullable=True),
        sa.Column("bridged_at", UTC_TS, nullable=True),
        sa.Column("bridge_seconds", sa.Float(), nullable=True),
    )
    op.create_index("ix_oncall_legs_call_id", "oncall_legs", ["call_id"])
    op.create_index("ix_oncall_legs_callback_attempt", "oncall_legs",
                    ["callback_id", "attempt_no"], unique=True)
    op.create_index("ix_oncall_legs_status", "oncall_legs", ["status"])


def downgrade() -> None:
    op.drop_table("oncall_legs")
    op.drop_table("oncall_callbacks")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("oncall_clinician")
        batch.drop_column("oncall_outcome")
