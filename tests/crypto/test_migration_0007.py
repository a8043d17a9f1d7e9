"""Migration 0007: plaintext rows of an older database kept as they are (read as legacy),
columns widened in place (no table copy: the calls' children survive), caller_index added."""

from __future__ import annotations

import pytest
from alembic import command
from crypto_helpers import CALLER, DOB, own_keyring, settings_in
from sqlalchemy import inspect, text

from ivr.db.engine import Database, alembic_config
from ivr.records import calls
from ivr.secure import crypto, rekey

OLD_ROWS = [
    "INSERT INTO calls (id, uniqueid, node, practice_id, dialled, forwarded_from, caller, "
    "started_at, seen_by_controller, operator_flag, same_day_callback) VALUES ('c1', 'u1', "
    f"'n', 'sunny-pediatrics', '+16175550100', '', '{CALLER}', '2026-11-26 21:57:45', TRUE, "
    "FALSE, FALSE)",
    "INSERT INTO call_events (call_id, at, kind, detail) VALUES "
    "('c1', '2026-11-26 21:57:45', 'call.started', '{}')",
    "INSERT INTO intake_fields (call_id, field, value, captured_at, confirmed, source, "
    f"attempts) VALUES ('c1', 'dob', '{DOB}', '2026-11-26 21:57:50', TRUE, 'keyed', 1)",
    "INSERT INTO oncall_legs (id, call_id, kind, practice_id, number, channel_id, status, "
    f"placed_at) VALUES ('l1', 'c1', 'patient', 'sunny-pediatrics', '{CALLER}', 'ch', "
    "'completed', '2026-11-26 22:00:00')",
]


def _migrate(conn, target: str, down: bool = False) -> dict:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    (command.downgrade if down else command.upgrade)(cfg, target)
    columns = {c["name"]: c for c in inspect(conn).get_columns("calls")}
    legs = {c["name"]: c for c in inspect(conn).get_columns("oncall_legs")}
    return {"caller": str(columns["caller"]["type"]), "number": str(legs["number"]["type"]),
            "index": "caller_index" in columns,
            "events": conn.execute(text("SELECT count(*) FROM call_events")).scalar(),
            "caller_value": conn.execute(text("SELECT caller FROM calls")).scalar()}


async def test_upgrade_keeps_old_plaintext_readable_and_rotation_seals_it(tmp_path, databases):
    settings = settings_in(tmp_path, databases)
    with own_keyring(settings):
        db = Database(settings.database_url)
        try:
            async with db.engine.begin() as conn:
                before = await conn.run_sync(_migrate, "0006_audit_log")
                for row in OLD_ROWS:
                    await conn.execute(text(row))
            assert before["caller"] == "VARCHAR(32)" and not before["index"]
            await db.create()  # what the controller does at start: to head
            async with db.engine.connect() as conn:
                after = await conn.run_sync(lambda c: {
                    "caller": str({x["name"]: x for x in inspect(c).get_columns("calls")}
                                  ["caller"]["type"]),
                    "events": c.execute(text("SELECT count(*) FROM call_events")).scalar()})
            assert after == {"caller": "TEXT", "events": 1}  # children kept: no table copy
            shown = await calls.show_call(db, "c1")
            assert shown["caller"] == CALLER and shown["intake"]["dob"]["value"] == DOB
            assert shown["oncall_legs"][0]["number"] == CALLER
            assert (await rekey.usage(db, settings.recordings_dir)).per_key() == \
                {rekey.PLAINTEXT: 3}

            await rekey.rotate(db, settings, settle_seconds=0, env={})
            async with db.engine.connect() as conn:
                stored = (await conn.execute(text(
                    "SELECT c.caller, c.caller_index, i.value, l.number FROM calls c "
                    "JOIN intake_fields i ON i.call_id = c.id "
                    "JOIN oncall_legs l ON l.call_id = c.id"))).one()
            assert all(crypto.is_sealed_text(v) for v in (stored[0], stored[2], stored[3]))
            assert stored[1] is not None  # the blind index, made by the rotation
            assert [c["id"] for c in await calls.list_calls(db, caller=CALLER)] == ["c1"]
            assert (await calls.show_call(db, "c1"))["intake"]["dob"]["value"] == DOB

            with pytest.raises(RuntimeError, match="sealed value"):
                async with db.engine.begin() as conn:
                    await conn.run_sync(_migrate, "0006_audit_log", True)
        finally:
            await db.close()


async def test_downgrade_without_sealed_values_restores_the_old_columns(tmp_path, databases):
    db = Database(databases.new(tmp_path / "ivr.sqlite3"))
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "0006_audit_log")
            for row in OLD_ROWS:
                await conn.execute(text(row))
            up = await conn.run_sync(_migrate, "head")
            down = await conn.run_sync(_migrate, "0006_audit_log", True)
        assert (up["caller"], up["number"], up["index"]) == ("TEXT", "TEXT", True)
        assert (down["caller"], down["number"], down["index"]) == \
            ("VARCHAR(32)", "VARCHAR(32)", False)
        assert down["events"] == 1 and down["caller_value"] == CALLER
    finally:
        await db.close()
