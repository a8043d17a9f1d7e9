"""Records after faults say what happened: a PBX restart is not the caller hanging up,
a bridge whose controller died gets an end, a call the PBX lost is recorded as lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr import contract
from ivr.db.engine import Database
from ivr.db.models import (
    END_CALLER_HANGUP,
    END_COMPLETED,
    END_PBX_FAILURE,
    END_PBX_RESTART,
    LEG_ACCEPTED,
    LEG_LIVE,
    Call,
    OncallLeg,
)
from ivr.records import calls
from ivr.records.stamps import parse_stamp

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


async def _call(db: Database, uniqueid: str, started: datetime = T0) -> str:
    return await calls.start_call(db, uniqueid=uniqueid, node="n", dialled="+16175550100",
                                  forwarded_from="", caller="+16175550199",
                                  started_at=started)


def _stamp(uniqueid: str, *, result: str = "", stage: str = "controller",
           by: str = "caller", end: datetime = T0 + timedelta(seconds=40)) -> object:
    fields = [str(int(T0.timestamp())), str(int(end.timestamp())), "+16175550100", "",
              "+16175550199", result, stage, "", "", "16", by]
    return parse_stamp(uniqueid, "|".join(fields))


async def _row(db: Database, call_id: str) -> Call:
    async with db.session() as s:
        row = await s.get(Call, call_id)
        assert row is not None
        return row


async def test_a_call_the_pbx_ended_itself_is_a_pbx_restart_not_a_caller_hangup(db):
    call_id = await _call(db, "n-1.1")
    # What the controller sees of a restart: an AGI hang-up, like a caller's.
    await calls.finish_call(db, call_id, result=contract.RESULT_DONE, hung_up=True)
    assert (await _row(db, call_id)).end_reason == END_CALLER_HANGUP
    await calls.apply_stamp(db, "n", _stamp("n-1.1", by=contract.HANGUP_BY_PBX), None)
    assert (await _row(db, call_id)).end_reason == END_PBX_RESTART


async def test_a_caller_who_hangs_up_is_still_a_caller_hangup(db):
    call_id = await _call(db, "n-1.2")
    await calls.finish_call(db, call_id, result=contract.RESULT_DONE, hung_up=True)
    await calls.apply_stamp(db, "n", _stamp("n-1.2", by=contract.HANGUP_BY_CALLER), None)
    assert (await _row(db, call_id)).end_reason == END_CALLER_HANGUP


async def test_a_bridged_call_that_ended_is_completed(db):
    call_id = await _call(db, "n-1.3")
    await calls.finish_call(db, call_id, result=contract.RESULT_BRIDGE, hung_up=False)
    await calls.apply_stamp(db, "n", _stamp("n-1.3", result="bridge", stage="bridged",
                                            by=contract.HANGUP_BY_OTHER), None)
    assert (await _row(db, call_id)).end_reason == END_COMPLETED


async def _accepted_leg(db: Database, call_id: str, bridged: datetime) -> str:
    async with db.session() as s:
        s.add(OncallLeg(id="leg1", call_id=call_id, kind=LEG_LIVE, practice_id="p",
                        number="+16175550121", channel_id="c1", status=LEG_ACCEPTED,
                        placed_at=bridged - timedelta(seconds=8),
                        answered_at=bridged - timedelta(seconds=5), bridged_at=bridged))
    return "leg1"


async def test_the_stamp_closes_a_bridge_whose_controller_died(db):
    call_id = await _call(db, "n-1.4")
    await _accepted_leg(db, call_id, T0 + timedelta(seconds=20))
    await calls.apply_stamp(db, "n", _stamp("n-1.4", stage="bridged",
                                            end=T0 + timedelta(seconds=50)), None)
    async with db.session() as s:
        leg = await s.get(OncallLeg, "leg1")
        assert leg is not None
        assert leg.ended_at == T0 + timedelta(seconds=50)
        assert leg.bridge_seconds == 30.0 and leg.status == LEG_ACCEPTED


async def test_a_call_with_no_channel_and_no_stamp_is_a_pbx_failure(db):
    lost = await _call(db, "n-1.5")
    await calls.add_event(db, lost, "menu.key", key="1")
    await _accepted_leg(db, lost, T0 + timedelta(seconds=20))
    still_up = await _call(db, "n-1.6")
    stamped = await _call(db, "n-1.7")
    swept = await calls.sweep_lost_calls(db, "n", {"n-1.6"}, {"n-1.7"},
                                         older_than=datetime.now(UTC))
    assert swept == [lost]
    row = await _row(db, lost)
    assert row.end_reason == END_PBX_FAILURE and row.ended_at is not None
    for other in (still_up, stamped):
        assert (await _row(db, other)).ended_at is None
    async with db.session() as s:
        leg = await s.get(OncallLeg, "leg1")
        assert leg is not None and leg.ended_at is not None
    # Idempotent: a second sweep finds nothing more.
    assert await calls.sweep_lost_calls(db, "n", {"n-1.6"}, {"n-1.7"},
                                        older_than=datetime.now(UTC)) == []


async def test_a_second_start_for_a_uniqueid_is_refused_and_changes_nothing(db):
    call_id = await _call(db, "n-1.8")
    before = await calls.show_call(db, call_id)
    with pytest.raises(calls.DuplicateCallStart):
        await calls.start_call(db, uniqueid="n-1.8", node="n", dialled="", forwarded_from="",
                               caller="+16175550162", started_at=datetime.now(UTC))
    assert await calls.show_call(db, call_id) == before
