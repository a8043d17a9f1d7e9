"""An abandoned call never loses its lead: the raw caller ID is kept, marked unvalidated,
and every abandoned call is listed as needing action, with or without a number."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from ivr.db.engine import Database
from ivr.documents.note import NA_ABANDONED, build_note
from ivr.flows import inbound
from ivr.flows.intake import spoken_number
from ivr.records import calls
from ivr.rules import load_rules

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sunny_rules():
    res = load_rules(REPO / "routing_rules", now=T0)
    assert res.ok
    return res.rules.practices["sunny-pediatrics"]


async def _abandon(db: Database, caller: str, e164: str | None) -> dict:
    call_id = await calls.start_call(db, uniqueid=f"n-{caller or 'none'}", node="n",
                                     dialled="+16175550100", forwarded_from="",
                                     caller=caller, started_at=T0)
    s = SimpleNamespace(db=db, call_id=call_id, step="intake.callback", told=[],
                        caller_e164=e164)
    await inbound._abandoned(s, caller)
    await calls.update_call(db, call_id, end_reason="caller_hangup", ended_at=T0)
    record = await calls.show_call(db, call_id)
    assert record is not None
    return record


async def test_a_caller_id_the_library_rejects_is_kept_unvalidated(db, sunny_rules):
    record = await _abandon(db, "+15551234567", None)  # 555-123...: no valid US number
    cb = record["intake"]["callback"]
    assert cb["value"] == "+15551234567" and not cb["confirmed"]
    assert cb["source"] == inbound.SOURCE_CALLER_ID_UNVALIDATED
    note = build_note(record, sunny_rules)
    assert note.callback_number == "+15551234567"
    assert NA_ABANDONED in note.needs_action
    assert any("caller ID, not validated" in line for line in note.brief())


@pytest.mark.parametrize("caller", ["", "anonymous", "+1555;1234", "12+34"])
async def test_without_a_usable_number_it_still_needs_action(db, sunny_rules, caller):
    record = await _abandon(db, caller, None)
    assert record["intake"].get("callback") is None  # nothing that is no number is kept
    note = build_note(record, sunny_rules)
    assert note.callback_number is None
    assert NA_ABANDONED in note.needs_action


async def test_a_valid_caller_id_is_kept_as_before(db, sunny_rules):
    record = await _abandon(db, "+16175550171", "+16175550171")
    assert record["intake"]["callback"]["source"] == "caller_id"
    assert NA_ABANDONED in build_note(record, sunny_rules).needs_action


def test_spoken_number_of_an_unparsable_lead_is_its_digits():
    assert spoken_number("5551234") == "5551234"
