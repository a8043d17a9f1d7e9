"""The call's cheap hot path keeps what the ORM path guaranteed (issue 16).

Intake fields written by Core statements are sealed for their place, replace an earlier
capture, and are durable once the call returns; a sealed column cannot be written by
update_call. Prompts computed at rules load are the ones computed on the spot.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from ivr.db.engine import Database
from ivr.db.sealed import SealError
from ivr.records import calls

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


async def _call(db: Database) -> str:
    return await calls.start_call(db, uniqueid="hot-1", node="n", dialled="+16175550100",
                                  forwarded_from="", caller="+16175550142", started_at=T0)


async def test_an_intake_value_is_sealed_replaced_and_read_back(db, tmp_path):
    call_id = await _call(db)
    await calls.save_intake(db, call_id, "dob", value="1990-01-02", source="keyed")
    await calls.save_intake(db, call_id, "dob", value="1990-01-03", source="keyed",
                            attempts=2)
    await calls.confirm_intake(db, call_id, "dob")
    # A second Database on the same file: what was committed, not what a session holds.
    other = Database(db.url)
    try:
        async with other.write() as conn:
            raw = (await conn.execute(text(
                "SELECT value, confirmed, attempts FROM intake_fields"))).all()
        record = await calls.show_call(other, call_id)
    finally:
        await other.close()
    assert len(raw) == 1 and "1990" not in raw[0][0]  # sealed at rest
    assert tuple(raw[0][1:]) == (1, 2)
    assert record is not None
    assert record["intake"]["dob"]["value"] == "1990-01-03"
    kinds = [e["kind"] for e in record["timeline"]]
    assert kinds.count("intake.dob.captured") == 2 and "intake.dob.confirmed" in kinds


async def test_a_recording_field_has_no_value_and_confirming_nothing_adds_nothing(db):
    call_id = await _call(db)
    await calls.save_intake(db, call_id, "name", recording_path="/r/name.wav.enc",
                            duration_seconds=1.5, source="recording")
    await calls.confirm_intake(db, call_id, "reason")  # never captured: no event
    record = await calls.show_call(db, call_id)
    assert record is not None
    assert record["intake"]["name"]["value"] is None
    assert record["intake"]["name"]["recording_path"] == "/r/name.wav.enc"
    assert not any(e["kind"] == "intake.reason.confirmed" for e in record["timeline"])


async def test_update_call_sets_plain_columns_and_refuses_sealed_ones(db):
    call_id = await _call(db)
    await calls.update_call(db, call_id, route="after_hours", operator_flag=False)
    with pytest.raises(KeyError):
        await calls.update_call(db, "no-such-call", route="x")
    with pytest.raises(TypeError, match="rout"):
        await calls.update_call(db, call_id, rout="typo")
    with pytest.raises(StatementError, match="sealed column") as refused:
        await calls.update_call(db, call_id, caller="+16175550199")
    assert isinstance(refused.value.orig, SealError)
    record = await calls.show_call(db, call_id)
    assert record is not None
    assert (record["route"], record["caller"]) == ("after_hours", "+16175550142")


async def test_finish_call_keeps_an_end_already_recorded(db):
    call_id = await _call(db)
    await calls.update_call(db, call_id, ended_at=T0)
    await calls.finish_call(db, call_id, result="done", hung_up=True)
    await calls.finish_call(db, await _second(db), result="done", hung_up=True)
    await calls.finish_call(db, await _second(db, "hot-3"), result="done", hung_up=False)
    with pytest.raises(KeyError):
        await calls.finish_call(db, "no-such-call", result="done", hung_up=False)
    rows = {r["uniqueid"]: r for r in await calls.list_calls(db)}
    assert datetime.fromisoformat(rows["hot-1"]["ended_at"]) == T0
    assert rows["hot-2"]["ended_at"] is not None
    assert rows["hot-2"]["end_reason"] == "caller_hangup"
    assert (rows["hot-3"]["end_reason"], rows["hot-3"]["ended_at"]) == ("completed", None)


async def _second(db: Database, uniqueid: str = "hot-2") -> str:
    return await calls.start_call(db, uniqueid=uniqueid, node="n", dialled="", caller="",
                                  forwarded_from="", started_at=T0)


async def test_a_started_call_has_its_caller_sealed_and_found_by_its_index(db):
    call_id = await _call(db)
    async with db.write() as conn:
        raw = (await conn.execute(text("SELECT caller, caller_index FROM calls"))).one()
    assert "6175550142" not in raw[0] and raw[1]
    found = await calls.list_calls(db, caller="+16175550142")
    assert [r["id"] for r in found] == [call_id] and found[0]["caller"] == "+16175550142"
    with pytest.raises(calls.DuplicateCallStart):
        await _call(db)
    anonymous = await _second(db, "hot-anon")
    record = await calls.show_call(db, anonymous)
    assert record is not None and record["caller"] == ""
    assert [e["kind"] for e in record["timeline"]] == ["call.started"]
