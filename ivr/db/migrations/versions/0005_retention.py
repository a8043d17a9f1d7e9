"""Retention: when a call's recordings were purged, and the append-only purge log.

Revision ID: 0005_retention
Revises: 0004_reports
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_retention"
down_revision = "0004_reports"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("recordings_purged_at", UTC_TS, nullable=True))

    op.create_table(
        "retention_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("at", UTC_TS, nullable=False),
        sa.Column("worker", sa.String(64), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=True),
        sa.Column("recordings_days", sa.Integer(), nullable=False),
        sa.Column("records_days", sa.Integer(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("calls_purged", sa.Integer(), nullable=False),
        sa.Column("recordings_deleted", sa.Integer(), nullable=False),
        sa.Column("calls_deleted", sa.Integer(), nullable=False),
        sa.Column("documents_deleted", sa.Integer(), nullable=False),
        sa.Column("bytes_freed", sa.BigInteger(), nullable=False),
        sa.Column("files_refused", sa.Integer(), nullable=False),
        sa.Column("calls_held", sa.Integer(), nullable=False),
    )
    op.create_index("ix_retention_log_at", "retention_log", ["at"])


def downgrade() -> None:
    op.drop_table("retention_log")
    # Not in batch mode: that copies `calls` and drops the original, and with SQLite's
    # foreign keys on the drop cascades into every call's timeline, intake and legs.
    # SQLite (3.35+) and PostgreSQL both drop a plain column in place.
    op.drop_column("calls", "recordings_purged_at")
