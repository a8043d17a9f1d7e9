"""Initial schema: calls, call_events, manual_overrides, intake_fields, recordings.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("uniqueid", sa.String(64), nullable=False),
        sa.Column("node", sa.String(40), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=True),
        sa.Column("dialled", sa.String(32), nullable=False),
        sa.Column("forwarded_from", sa.String(32), nullable=False),
        sa.Column("caller", sa.String(32), nullable=False),
        sa.Column("route", sa.String(32), nullable=True),
        sa.Column("started_at", UTC_TS, nullable=False),
        sa.Column("ended_at", UTC_TS, nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("result", sa.String(16), nullable=True),
        sa.Column("fallback_reason", sa.String(64), nullable=True),
        sa.Column("last_stage", sa.String(32), nullable=True),
        sa.Column("fallback_recording", sa.Text(), nullable=True),
        sa.Column("seen_by_controller", sa.Boolean(), nullable=False),
        sa.Column("reconciled_at", UTC_TS, nullable=True),
        sa.Column("rules_digest", sa.String(32), nullable=True),
        sa.Column("state_kind", sa.String(16), nullable=True),
        sa.Column("state_reason", sa.String(200), nullable=True),
        sa.Column("disposition", sa.String(16), nullable=True),
        sa.Column("caller_told", sa.Text(), nullable=True),
        sa.Column("operator_flag", sa.Boolean(), nullable=False),
        sa.Column("same_day_callback", sa.Boolean(), nullable=False),
        sa.Column("abandoned_step", sa.String(32), nullable=True),
    )
    op.create_index("ix_calls_practice_id", "calls", ["practice_id"])
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_node_uniqueid", "calls", ["node", "uniqueid"], unique=True)

    op.create_table(
        "call_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(32), sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("at", UTC_TS, nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_call_events_call_id", "call_events", ["call_id"])

    op.create_table(
        "manual_overrides",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("start", UTC_TS, nullable=False),
        sa.Column("end", UTC_TS, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("cleared_at", UTC_TS, nullable=True),
    )
    op.create_index("ix_manual_overrides_practice_id", "manual_overrides", ["practice_id"])
    op.create_index("ix_manual_overrides_end", "manual_overrides", ["end"])

    op.create_table(
        "intake_fields",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(32), sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("recording_path", sa.Text(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("captured_at", UTC_TS, nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )
    op.create_index("ix_intake_fields_call_id", "intake_fields", ["call_id"])
    op.create_index("ix_intake_fields_call_field", "intake_fields", ["call_id", "field"],
                    unique=True)

    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(32), sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("peak", sa.Integer(), nullable=False),
        sa.Column("rms", sa.Float(), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
    )
    op.create_index("ix_recordings_call_id", "recordings", ["call_id"])


def downgrade() -> None:
    for table in ("recordings", "intake_fields", "manual_overrides", "call_events", "calls"):
        op.drop_table(table)
