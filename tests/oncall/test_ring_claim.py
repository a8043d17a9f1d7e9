"""Legs rung together: exactly one clinician can take the call."""

from __future__ import annotations

import asyncio

from ivr.oncall.dialer import Leg, RingClaim


def _legs(practice, n, claim):
    return [Leg(id=f"leg{i}", call_id="call", kind="live", practice=practice,
                clinician_id=f"c{i}", number="+16175550321", ring_seconds=10, ring=claim)
            for i in range(n)]


def test_first_key_wins_and_the_others_learn_it(practice):
    async def run():
        a, b, c = _legs(practice, 3, RingClaim())
        assert not any(leg.taken_elsewhere for leg in (a, b, c))
        assert b.claim() and b.claim()  # pressing 1 twice keeps it
        assert not a.claim() and not c.claim()
        assert a.taken_elsewhere and c.taken_elsewhere and not b.taken_elsewhere

    asyncio.run(run())


def test_a_leg_rung_alone_always_may_take_the_call(practice):
    async def run():
        (only,) = _legs(practice, 1, None)
        assert only.claim() and not only.taken_elsewhere

    asyncio.run(run())


def test_the_row_keeps_the_result_that_settled_first(practice, tmp_path, databases):
    """DialEnd (busy) and OriginateResponse (Reason 0: failed) both finish a leg; their
    database writes may land in either order, and the row must say what the flow saw."""
    from ivr.db.engine import Database
    from ivr.db.models import OncallLeg
    from ivr.oncall.dialer import Dialer

    async def run():
        db = Database(databases.new(tmp_path / "ivr.sqlite3", at_head=True))
        await db.create()
        from datetime import UTC, datetime

        from ivr.records import calls

        dialer = Dialer(ami=None, db=db)  # type: ignore[arg-type]
        call_id = await calls.start_call(db, uniqueid="1.1", node="t", dialled="",
                                         forwarded_from="", caller="",
                                         started_at=datetime.now(UTC))
        (leg,) = _legs(practice, 1, None)
        leg.call_id = call_id
        await dialer.insert(leg, role="nurse", step_index=0)
        leg.settle("busy")  # the DialEnd's finish settled first ...
        leg.final_detail = "dial-busy"
        await dialer.finish(leg, "failed", detail="reason-0")  # ... this write lands first
        await dialer.finish(leg, "busy", detail="dial-busy")
        async with db.session() as s:
            row = await s.get(OncallLeg, leg.id)
            assert (row.status, row.detail) == ("busy", "dial-busy")
        await db.engine.dispose()

    asyncio.run(run())
