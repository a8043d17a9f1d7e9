"""ivr.records.audit: append and read only; the shape of an entry keeps patient data out."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import pytest
from audit_helpers import CALLER, SUNNY, store_call
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ivr.db.models import AuditEntry
from ivr.records import audit
from ivr.retention import purge as retention

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def test_record_then_read_newest_first_with_filters(db):
    await audit.record(db, "cli:alice:10", audit.CALL_READ, practice_id=SUNNY,
                       subject="c1", detail={"format": "json"}, at=T0)
    await audit.record(db, "controller:a", audit.RULES_RELOAD, subject="0123456789abcdef",
                       detail={"files": ["sunny-pediatrics.yaml"], "digest_from": None},
                       at=T0 + timedelta(minutes=1))
    await audit.record(db, "controller:a", audit.RULES_REFUSED, subject="0123456789abcdef",
                       detail={"errors": 2}, at=T0 + timedelta(minutes=2))
    await audit.record(db, "cli:bob:11", audit.NOTE_READ, practice_id="mesa-family",
                       subject="c2", at=T0 + timedelta(minutes=3))
    rows = await audit.read(db)
    assert [r["action"] for r in rows] == ["note.read", "rules.refused", "rules.reload",
                                           "call.read"]
    assert rows[-1] == {"id": rows[-1]["id"], "at": T0.isoformat(), "actor": "cli:alice:10",
                        "action": "call.read", "practice_id": SUNNY, "subject": "c1",
                        "detail": {"format": "json"}}
    assert rows[0]["detail"] == {}
    assert [r["action"] for r in await audit.read(db, action="rules")] == [
        "rules.refused", "rules.reload"]
    assert [r["subject"] for r in await audit.read(db, action="call.read")] == ["c1"]
    assert [r["subject"] for r in await audit.read(db, practice_id=SUNNY)] == ["c1"]
    assert [r["subject"] for r in await audit.read(db, subject="c2")] == ["c2"]
    assert len(await audit.read(db, since=T0 + timedelta(minutes=2))) == 2
    assert len(await audit.read(db, limit=3)) == 3
    with pytest.raises(ValueError, match="unknown action 'calls.delete'"):
        await audit.read(db, action="calls.delete")


@pytest.mark.parametrize("bad, message", [
    ({"action": "call.delete"}, "unknown audit action"),
    ({"subject": CALLER}, "subject must be an id"),  # a phone number is not an id
    ({"subject": "Jane Doe"}, "subject must be an id"),
    ({"practice_id": "x" * 65}, "practice_id must be an id"),
    ({"detail": {"caller": {"number": "1"}}}, "expected scalars"),
    ({"detail": {"text": "x" * 201}}, "a string longer than 200"),
    ({"detail": {f"k{i}": "x" * 150 for i in range(30)}}, "at most 4000"),
    ({"at": datetime(2026, 11, 20, 12, 0)}, "aware"),
    ({"actor": ""}, "actor must be"),
])
async def test_record_refuses_what_is_not_an_entry(db, bad, message):
    args = {"actor": "cli:root:1", "action": audit.CALL_READ, **bad}
    actor, action = args.pop("actor"), args.pop("action")
    with pytest.raises(ValueError, match=message):
        await audit.record(db, actor, action, **args)
    assert await audit.read(db) == []


async def test_an_entry_recorded_in_a_session_goes_with_its_transaction(db):
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with db.session() as session:
            await audit.record(session, "cli:root:1", audit.OVERRIDE_CLEAR,
                               practice_id=SUNNY, detail={"cleared": 0})
            raise Rollback
    assert await audit.read(db) == []
    async with db.session() as session:
        entry_id = await audit.record(session, "cli:root:1", audit.OVERRIDE_CLEAR,
                                      practice_id=SUNNY, detail={"cleared": 0})
    assert [r["id"] for r in await audit.read(db)] == [entry_id]


def test_there_is_no_update_or_delete_api():
    public = {name for name, value in vars(audit).items()
              if callable(value) and not name.startswith("_")
              and getattr(value, "__module__", None) == audit.__name__}
    assert public == {"record", "read", "cli_actor", "controller_actor", "action_filter",
                      "AuditError"}
    words = ("update", "delete", "remove", "purge", "clear", "trim", "truncate", "edit")
    assert not [n for n, v in vars(audit).items()
                if callable(v) and any(w in n.lower() for w in words)]
    assert list(inspect.signature(audit.record).parameters)[:3] == ["db", "actor", "action"]
    # Retention, the only module that deletes records, never goes near the table.
    source = inspect.getsource(retention)
    assert "AuditEntry" not in source and "from .audit" not in source


async def test_the_database_refuses_updates_and_deletes(db):
    await audit.record(db, "cli:root:1", audit.CALL_READ, subject="c1", at=T0)
    for statement in (update(AuditEntry).values(actor="cli:someone-else:2"),
                      delete(AuditEntry)):
        with pytest.raises(IntegrityError, match="append-only"):
            async with db.session() as session:
                await session.execute(statement)
    with pytest.raises(IntegrityError, match="append-only"):
        async with db.session() as session:
            await session.delete(await session.scalar(select(AuditEntry)))
    [row] = await audit.read(db)
    assert row["actor"] == "cli:root:1"


async def test_entries_outlive_the_calls_they_name(db, tmp_path, rules):
    """Retention deletes a call whole; the entries naming it stay (no foreign key)."""
    call_id = await store_call(db, started=datetime.now(UTC) - timedelta(days=3000),
                               uniqueid="u-old", recording=False)
    await audit.record(db, "cli:root:1", audit.CALL_READ, practice_id=SUNNY,
                       subject=call_id)
    summary = await retention.purge(db, rules, datetime.now(UTC), tmp_path)
    assert summary.totals()["calls_deleted"] == 1
    assert [r["subject"] for r in await audit.read(db)] == [call_id]


def test_actors():
    import os

    actor = audit.cli_actor()
    kind, user, pid = actor.split(":")
    assert kind == "cli" and user and pid == str(os.getpid())
    assert audit.controller_actor("node-a") == "controller:node-a"
    assert audit.KEEP_YEARS >= 6
