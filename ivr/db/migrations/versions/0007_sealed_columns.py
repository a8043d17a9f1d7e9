"""Sealed patient columns: calls.caller and oncall_legs.number become TEXT (a sealed value
is longer than the 32 characters of a number), calls.caller_index holds the caller's
blind index. intake_fields.value is TEXT already.

Existing rows keep their plaintext until `ivr keys rotate` seals them (the code reads
both meanwhile); this migration moves no data between forms.

Revision ID: 0007_sealed_columns
Revises: 0006_audit_log
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_sealed_columns"
down_revision = "0006_audit_log"
branch_labels = None
depends_on = None

WIDENED = (("calls", "caller"), ("oncall_legs", "number"))


def _retype(table: str, column: str, new: sa.types.TypeEngine[str]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(table, column, type_=new, existing_nullable=False)
        return
    # SQLite cannot change a column's type in place, and batch mode's table copy drops
    # the original table, which with foreign keys on cascades into every call's timeline,
    # intake and legs. So: a new column, the values copied, the old one dropped and the
    # new one renamed (SQLite 3.35+ drops and renames columns in place).
    temp = f"{column}_retyped"
    op.add_column(table, sa.Column(temp, new, nullable=False, server_default=""))
    op.execute(f"UPDATE {table} SET {temp} = {column}")
    op.drop_column(table, column)
    op.execute(f"ALTER TABLE {table} RENAME COLUMN {temp} TO {column}")


def upgrade() -> None:
    for table, column in WIDENED:
        _retype(table, column, sa.Text())
    op.add_column("calls", sa.Column("caller_index", sa.String(32), nullable=True))
    op.create_index("ix_calls_caller_index", "calls", ["caller_index"])


def downgrade() -> None:
    # The versions before this one cannot read sealed values: refuse rather than leave
    # them cipher text for good (restore the backup taken before the upgrade instead).
    bind = op.get_bind()
    for table, column in (*WIDENED, ("intake_fields", "value")):
        sealed = bind.execute(sa.text(
            f"SELECT count(*) FROM {table} WHERE {column} LIKE 'ivr1:%'")).scalar()
        if sealed:
            raise RuntimeError(f"{table}.{column} holds {sealed} sealed value(s); the older "
                               "schema cannot read them. Restore a backup instead.")
    op.drop_index("ix_calls_caller_index", table_name="calls")
    op.drop_column("calls", "caller_index")
    for table, column in WIDENED:
        _retype(table, column, sa.String(32))
