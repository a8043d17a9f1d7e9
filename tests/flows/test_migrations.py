"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ivr.db.engine import SCHEMA_HEAD as HEAD
from ivr.db.engine import Database
from ivr.db.models import Base

#: How many triggers the schema has (SQLite: UPDATE and DELETE refused; PostgreSQL: UPDATE
#: or DELETE in one, TRUNCATE in another).
TRIGGERS = {"sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'",
            "postgresql": "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"}

try:  # other packages add their tables to the same metadata (and their migrations)
    import ivr.accounts.models  # noqa: F401
    import ivr.delivery.models  # noqa: F401
except ImportError:
    pass


def test_the_schema_head_named_in_code_is_alembics_head():
    """ivr.db.engine.SCHEMA_HEAD lets a database at head skip Alembic: a new migration
    must move it too."""
    from alembic.script import ScriptDirectory

    from ivr.db.engine import alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD, \
        "a migration was added: set ivr.db.engine.SCHEMA_HEAD to its revision"


async def test_upgrade_head_creates_every_table_and_matches_the_models(tmp_path, databases):
    db = Database(databases.new(tmp_path / "ivr.sqlite3"))
    try:
        await db.create()
        await db.create()  # idempotent: a second start changes nothing

        def check(conn):
            names = set(inspect(conn).get_table_names())
            assert {"calls", "call_events", "manual_overrides", "intake_fields",
                    "recordings", "retention_log", "audit_log", "alembic_version"} <= names
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, Base.metadata)

        async with db.engine.connect() as conn:
            diff = await conn.run_sync(check)
        assert diff == []
    finally:
        await db.close()


async def test_retention_migration_downgrades_without_touching_calls(tmp_path, databases):
    """0005 adds calls.recordings_purged_at and retention_log; its downgrade drops the
    column in place (a batch copy of `calls` would cascade into every call's children)."""
    from datetime import UTC, datetime

    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from ivr.db.engine import alembic_config
    from ivr.records import calls

    cfg = alembic_config()
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD
    db = Database(databases.new(tmp_path / "ivr.sqlite3"))
    try:
        await db.create()
        call_id = await calls.start_call(db, uniqueid="u1", node="n", dialled="",
                                         forwarded_from="", caller="",
                                         started_at=datetime.now(UTC))

        def migrate(conn, target, down):
            cfg.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(cfg, target)
            names = set(inspect(conn).get_table_names())
            columns = {c["name"] for c in inspect(conn).get_columns("calls")}
            events = conn.execute(text("SELECT count(*) FROM call_events")).scalar()
            return "retention_log" in names, "recordings_purged_at" in columns, events

        async with db.engine.begin() as conn:
            assert await conn.run_sync(migrate, "0004_reports", True) == (False, False, 1)
        async with db.engine.begin() as conn:
            assert await conn.run_sync(migrate, "head", False) == (True, True, 1)
        assert (await calls.show_call(db, call_id))["recordings_purged_at"] is None
    finally:
        await db.close()


async def test_audit_log_migration_is_head_refuses_changes_and_downgrades(tmp_path, databases):
    """0006 adds the append-only audit_log: triggers refuse UPDATE and DELETE; its
    downgrade drops the table (and its triggers) and nothing else."""
    import pytest
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from ivr.db.engine import alembic_config
    from ivr.records import audit

    cfg = alembic_config()
    db = Database(databases.new(tmp_path / "ivr.sqlite3"))
    try:
        await db.create()
        await audit.record(db, "cli:test:1", audit.CALL_READ, subject="c1")
        for statement in ("UPDATE audit_log SET actor = 'someone else'",
                          "DELETE FROM audit_log"):
            with pytest.raises(IntegrityError, match="audit_log is append-only"):
                async with db.engine.begin() as conn:
                    await conn.execute(text(statement))
        assert [r["actor"] for r in await audit.read(db)] == ["cli:test:1"]

        def migrate(conn, target, down):
            cfg.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(cfg, target)
            names = set(inspect(conn).get_table_names())
            triggers = conn.execute(text(TRIGGERS[conn.dialect.name])).scalar()
            return "audit_log" in names, "retention_log" in names, triggers

        async with db.engine.begin() as conn:
            assert await conn.run_sync(migrate, "0005_retention", True) == (False, True, 0)
        async with db.engine.begin() as conn:
            assert await conn.run_sync(migrate, "head", False) == (True, True, 2)
    finally:
        await db.close()
