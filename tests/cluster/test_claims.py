"""Once-only jobs claimed exactly once by several nodes on one database (SQLite and
PostgreSQL): call-back attempts, deliveries and the folding of hang-up stamps, each with
several engines (one per node: their own connection pools) claiming at the same time;
and on PostgreSQL, a row another node is claiming is passed over, not waited for."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from ivr.db.claims import lock_or_skip
from ivr.db.engine import Database
from ivr.db.models import CallEvent, OncallCallback, OncallLeg
from ivr.delivery import outbox
from ivr.delivery.outbox import Job, RetryPolicy, SendResult, Worker
from ivr.oncall import callbacks
from ivr.oncall.dialer import new_leg_id
from ivr.records import calls
from ivr.records.stamps import Stamp
from ivr.rules import load_rules

REPO = Path(__file__).resolve().parents[2]
NODES = 4
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # a night at sunny-pediatrics


@pytest.fixture(scope="module")
def sunny():
    res = load_rules(REPO / "routing_rules", now=NOW)
    assert res.ok, [str(e) for e in res.errors]
    return res.rules.practices["sunny-pediatrics"]


@pytest.fixture
async def nodes(tmp_path, databases):
    """NODES engines on one new database (the first has made the schema)."""
    url = databases.new(tmp_path / "ivr.sqlite3", at_head=True)
    engines = [Database(url) for _ in range(NODES)]
    await engines[0].create()
    try:
        yield engines
    finally:
        for engine in engines:
            await engine.close()


async def _pending_callbacks(db: Database, practice, count: int) -> list[str]:
    ids = []
    for i in range(count):
        call_id = await calls.start_call(db, uniqueid=f"1.{i}", node="a", dialled="",
                                         forwarded_from="", caller="", started_at=NOW)
        assert await callbacks.create(db, callback_id=f"cb{i}", call_id=call_id,
                                      practice=practice, now=NOW, first_at=NOW,
                                      interval_seconds=600, promised=None)
        ids.append(f"cb{i}")
    return ids


async def test_each_due_call_back_attempt_is_claimed_by_one_node(nodes, sunny):
    ids = await _pending_callbacks(nodes[0], sunny, 24)

    async def node(db: Database) -> list[str]:
        won = []
        for cb in await callbacks.due(db, NOW, limit=100):
            leg = new_leg_id()
            claimed = await callbacks.claim_attempt(db, cb, sunny, NOW, leg, f"ivrleg-{leg}")
            if claimed is not None:
                won.append(claimed.callback_id)
        return won

    results = await asyncio.gather(*(node(db) for db in nodes))
    claimed = Counter(cb for won in results for cb in won)
    assert sorted(claimed) == sorted(ids) and set(claimed.values()) == {1}, claimed
    async with nodes[0].session() as s:
        legs = (await s.execute(select(OncallLeg.callback_id, OncallLeg.attempt_no))).all()
        attempts = (await s.scalars(select(OncallCallback.attempts))).all()
    assert sorted(legs) == sorted((cb, 1) for cb in ids)  # one leg each: nobody rang twice
    assert set(attempts) == {1}


class CountingSender:
    channel, timeout = "webhook", 10.0

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, job: Job) -> SendResult:
        self.sent.append(job.id)
        await asyncio.sleep(0)  # let the other nodes run between claim and record
        return SendResult()


async def test_each_delivery_is_sent_by_one_node(nodes):
    ids = [await outbox.enqueue(nodes[0], practice_id="sunny", channel="webhook",
                                destination="https://hooks.example/ivr", document_kind="note",
                                document_id=f"n{i}", now=NOW) for i in range(48)]
    senders = [CountingSender() for _ in nodes]
    workers = [Worker(db, {"webhook": s}, worker_id=f"node{i}", limit=5,
                      policy=RetryPolicy(max_attempts=1))
               for i, (db, s) in enumerate(zip(nodes, senders, strict=True))]

    async def drain(worker: Worker) -> None:
        for _ in range(30):
            await worker.run_due(NOW)

    await asyncio.gather(*(drain(w) for w in workers))
    sent = Counter(i for s in senders for i in s.sent)
    assert sorted(sent) == sorted(ids) and set(sent.values()) == {1}, sent
    assert sum(1 for s in senders if s.sent) >= 2  # the work was shared


def _stamp(uniqueid: str) -> Stamp:
    return Stamp(uniqueid=uniqueid, started_at=NOW, ended_at=NOW + timedelta(minutes=2),
                 did="+16175550100", forwarded_from="", caller="", result="done",
                 stage="intake", call_id="", dialstatus="", hangup_cause="16",
                 hangup_by="caller")


async def test_each_stamp_is_folded_in_once_by_two_controllers_of_a_node(nodes):
    """Both controllers of node `a` read its stamps folder; seen and unseen calls."""
    seen = [f"1.{i}" for i in range(10)]
    for uniqueid in seen:
        await calls.start_call(nodes[0], uniqueid=uniqueid, node="a", dialled="",
                               forwarded_from="", caller="", started_at=NOW)
    unseen = [f"2.{i}" for i in range(10)]  # the fallback took them: no record yet

    async def controller(db: Database) -> None:
        # As reconcile does: a stamp whose write failed stays on disk for the next round.
        left = seen + unseen
        for _ in range(50):
            failed = []
            for uniqueid in left:
                try:
                    await calls.apply_stamp(db, "a", _stamp(uniqueid), None)
                except DBAPIError:  # SQLite: the other writer won (busy, or a duplicate)
                    failed.append(uniqueid)
            if not failed:
                return
            left = failed
        raise AssertionError(f"stamps never applied: {left}")

    await asyncio.gather(*(controller(db) for db in nodes[:2]))
    async with nodes[0].session() as s:
        ended = (await s.execute(select(CallEvent.call_id, func.count())
                                 .where(CallEvent.kind == "call.ended")
                                 .group_by(CallEvent.call_id))).all()
    assert len(ended) == 20 and {n for _, n in ended} == {1}, ended


async def test_each_lost_call_is_swept_once_by_two_controllers_of_a_node(nodes):
    """A node's Asterisk killed: both its controllers, back, sweep its calls with no
    channel and no stamp at once; each is ended pbx_failure once (one call.ended)."""
    lost = [await calls.start_call(nodes[0], uniqueid=f"3.{i}", node="a", dialled="",
                                   forwarded_from="", caller="", started_at=NOW)
            for i in range(10)]

    async def controller(db: Database) -> list[str]:
        for _ in range(50):
            try:
                return await calls.sweep_lost_calls(db, "a", set(), set(),
                                                    older_than=datetime.now(UTC))
            except DBAPIError:  # SQLite: the other writer holds the file; next round
                continue
        raise AssertionError("the sweep never ran")

    swept = await asyncio.gather(*(controller(db) for db in nodes[:2]))
    assert sorted(swept[0] + swept[1]) == sorted(lost)
    async with nodes[0].session() as s:
        ended = (await s.execute(select(CallEvent.call_id, func.count())
                                 .where(CallEvent.kind == "call.ended")
                                 .group_by(CallEvent.call_id))).all()
    assert len(ended) == 10 and {n for _, n in ended} == {1}, ended


async def test_a_row_another_node_is_claiming_is_passed_over_not_waited_for(nodes, sunny):
    if nodes[0].engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer at a time")
    await _pending_callbacks(nodes[0], sunny, 2)
    first, other = await callbacks.get(nodes[0], "cb0"), await callbacks.get(nodes[0], "cb1")
    async with nodes[0].session() as holding:  # node 0 is in the middle of claiming cb0
        assert await lock_or_skip(holding, OncallCallback.id, OncallCallback.id == "cb0")
        # A generous deadline: only a claim that waited for node 0's commit would reach it.
        skipped = await asyncio.wait_for(callbacks.claim_attempt(
            nodes[1], first, sunny, NOW, new_leg_id(), "ch-1"), 60)
        taken = await asyncio.wait_for(callbacks.claim_attempt(
            nodes[1], other, sunny, NOW, new_leg_id(), "ch-2"), 60)
        assert skipped is None and taken is not None and taken.callback_id == "cb1"
    # Node 0 let go without claiming (its transaction changed nothing): cb0 is free again.
    again = await callbacks.claim_attempt(nodes[1], first, sunny, NOW, new_leg_id(), "ch-3")
    assert again is not None and again.attempt_no == 1
