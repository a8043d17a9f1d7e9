"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ivr.db.engine import Database
from ivr.db.models import Base

try:  # other packages add their tables to the same metadata (and their migrations)
    import ivr.delivery.models  # noqa: F401
except ImportError:
    pass


async def test_upgrade_head_creates_every_table_and_matches_the_models(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ivr.sqlite3'}")
    try:
        await db.create()
        await db.create()  # idempotent: a second start changes nothing

        def check(conn):
            names = set(inspect(conn).get_table_names())
            assert {"calls", "call_events", "manual_overrides", "intake_fields",
                    "recordings", "alembic_version"} <= names
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, Base.metadata)

        async with db.engine.connect() as conn:
            diff = await conn.run_sync(check)
        assert diff == []
    finally:
        await db.close()
