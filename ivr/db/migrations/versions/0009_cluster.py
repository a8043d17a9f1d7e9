"""PostgreSQL's audit_log trigger refuses with an integrity error, as SQLite's does.

0006's PostgreSQL trigger raised a plain exception (SQLSTATE P0001), which the driver
reports as a generic database error, while SQLite's RAISE(ABORT) in a trigger is a
constraint failure (IntegrityError). The function now raises `restrict_violation`
(SQLSTATE 23001, class 23: integrity constraint violation), so on both databases a
change to the log is refused as sqlalchemy.exc.IntegrityError with the same message.
Nothing changes on SQLite.

Revision ID: 0009_cluster
Revises: 0008_portal
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0009_cluster"
down_revision = "0008_portal"
branch_labels = None
depends_on = None

REFUSED = "audit_log is append-only"


def _refuse_function(errcode: str | None) -> str:
    using = f" USING ERRCODE = '{errcode}'" if errcode else ""
    return ("CREATE OR REPLACE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN RAISE EXCEPTION '{REFUSED}'{using}; END $$")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_refuse_function("restrict_violation"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_refuse_function(None))
