"""The group commit of a call's steps (ivr.records.journal.write, issue 16): steps queued
together are committed together, each still committed before its caller goes on; a
refused step fails only its caller; a database that is gone sends the batch to the
journal; a call's steps keep their order; a cancelled caller breaks nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from support.databases import SQLITE, Databases

from ivr.db.engine import Database
from ivr.db.models import SOURCE_KEYED, CallEvent
from ivr.records import calls, journal
from ivr.records.journal import BATCH_MOST, Journal

DOB = "1990-01-02"


async def _opened(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    await database.create()
    try:
        yield database
    finally:
        await database.close()
        journal.attach(database, None)


@pytest.fixture
async def db(tmp_path: Path, databases: Databases):
    async for database in _opened(databases.new(tmp_path / "db" / "ivr.sqlite3",
                                                at_head=True)):
        yield database


@pytest.fixture
async def sqlite_db(tmp_path: Path):
    """SQLite only: its folder can be taken away (a disk that is gone)."""
    async for database in _opened(Databases(SQLITE).new(tmp_path / "db" / "ivr.sqlite3",
                                                        at_head=True)):
        yield database


def _commits(db: Database) -> Iterator[list[int]]:
    count = [0]

    def counted(_conn: Any) -> None:
        count[0] += 1
    event.listen(db.engine.sync_engine, "commit", counted)
    try:
        yield count
    finally:
        event.remove(db.engine.sync_engine, "commit", counted)


@pytest.fixture
def commits(db: Database) -> Iterator[list[int]]:
    yield from _commits(db)


async def _calls(db: Database, n: int) -> list[str]:
    return [await calls.start_call(db, uniqueid=f"gc-{i}", node="n", dialled="+16175550100",
                                   forwarded_from="", caller="+16175550142",
                                   started_at=calls.now()) for i in range(n)]


async def _kinds(db: Database, call_id: str) -> list[str]:
    async with db.write() as conn:
        rows = await conn.scalars(select(CallEvent.kind).where(CallEvent.call_id == call_id)
                                  .order_by(CallEvent.id))
        return [k for k in rows if k != "call.started"]


def _writer_task(db: Database) -> asyncio.Task[None] | None:
    writer = journal._WRITERS.get(db)
    return writer.task if writer is not None else None


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds (no timed sleep: one turn at a time)."""
    while not condition():
        await asyncio.sleep(0)


async def test_concurrent_steps_of_many_calls_share_commits(db, commits):
    ids = await _calls(db, BATCH_MOST + 36)
    commits[0] = 0
    await asyncio.gather(*(calls.add_event(db, c, "prompt.greeting") for c in ids))
    # All queued before the writer's first turn: two batches (the bound), two commits
    # (counted before the reads below, which commit too).
    assert commits[0] == 2
    for c in ids:
        assert await _kinds(db, c) == ["prompt.greeting"]
    task = _writer_task(db)
    assert task is not None and task.done()  # idle: no task left behind


async def test_a_refused_step_fails_only_its_caller(db, commits):
    ids = await _calls(db, 4)
    commits[0] = 0
    results = await asyncio.gather(
        calls.add_event(db, ids[0], "prompt.greeting"),
        calls.add_event(db, "no-such-call", "prompt.greeting"),  # the foreign key
        calls.save_intake(db, ids[1], "dob", value=DOB, source=SOURCE_KEYED),
        calls.update_call(db, "no-such-call-either", disposition="routine"),  # KeyError
        calls.add_event(db, ids[2], "prompt.triage"),
        return_exceptions=True)
    assert commits[0] == 3  # the batch rolled back, then its three good steps one by one
    assert isinstance(results[1], IntegrityError) and isinstance(results[3], KeyError)
    assert [results[i] for i in (0, 2, 4)] == [None, None, None]
    assert await _kinds(db, ids[0]) == ["prompt.greeting"]
    assert await _kinds(db, ids[1]) == ["intake.dob.captured"]
    assert await _kinds(db, ids[2]) == ["prompt.triage"]


async def test_a_call_keeps_the_order_of_its_steps(db, commits):
    ids = await _calls(db, 6)
    commits[0] = 0

    async def flow(call_id: str) -> None:
        await calls.save_intake(db, call_id, "dob", value=DOB, source=SOURCE_KEYED)
        await calls.confirm_intake(db, call_id, "dob")
        # Background events chained as Session.event_soon does, then one awaited.
        previous: asyncio.Future[None] | None = None
        chain = []
        for kind in ("prompt.a", "prompt.b", "prompt.c"):
            async def later(kind: str = kind, before: Any = previous) -> None:
                if before is not None:
                    await before
                await calls.add_event(db, call_id, kind)
            previous = asyncio.ensure_future(later())
            chain.append(previous)
        await asyncio.gather(*chain)
        await calls.finish_call(db, call_id, result="done", hung_up=False)

    await asyncio.gather(*(flow(c) for c in ids))
    # One per round of the six calls' steps (6), not 36; a slow turn may split a round.
    assert commits[0] <= 12
    for c in ids:
        assert await _kinds(db, c) == ["intake.dob.captured", "intake.dob.confirmed",
                                       "prompt.a", "prompt.b", "prompt.c",
                                       "controller.finished"]


async def test_a_database_that_is_gone_sends_the_batch_to_the_journal(sqlite_db, tmp_path,
                                                                      caplog):
    db = sqlite_db
    ids = await _calls(db, 3)
    # The folder gone: SQLite cannot open the file (pooled connections closed first).
    await db.engine.dispose()
    folder = Path(db.url.split("///", 1)[1]).parent
    folder.rename(folder.with_name("away"))
    try:
        # No journal: every step's caller hears of it.
        alone = await asyncio.gather(*(calls.add_event(db, c, "prompt.greeting")
                                       for c in ids), return_exceptions=True)
        assert all(journal.cannot_write(r) for r in alone if isinstance(r, BaseException))
        assert all(isinstance(r, BaseException) for r in alone)

        kept = Journal(tmp_path / "journal" / "controller.jsonl").load()
        journal.attach(db, kept)
        await asyncio.gather(
            calls.save_intake(db, ids[0], "dob", value=DOB, source=SOURCE_KEYED),
            calls.add_event(db, ids[1], "prompt.greeting"),
            calls.update_call(db, ids[2], disposition="routine"))
        assert [(e.call_id, e.op) for e in kept.pending()] == [
            (ids[0], "intake"), (ids[1], "event"), (ids[2], "update")]
        # Once kept, a call's next steps wait behind it (before the queue).
        await calls.confirm_intake(db, ids[0], "dob")
        assert kept.pending()[-1].op == "confirm"
    finally:
        folder.with_name("away").rename(folder)
    assert caplog.text.count("kept in the journal until the database is back") == 3
    assert DOB not in caplog.text and "routine" not in caplog.text
    assert await journal.replay(db, kept) == 4
    assert await _kinds(db, ids[0]) == ["intake.dob.captured", "intake.dob.confirmed"]


async def test_a_cancelled_caller_breaks_nothing(db, monkeypatch):
    ids = await _calls(db, 4)
    entered, release = asyncio.Event(), asyncio.Event()

    async def block(conn: Any, call_id: str) -> None:
        entered.set()
        await release.wait()
    monkeypatch.setitem(journal.OPS, "test.block", block)

    # The first batch: an event, then a step that holds the writer in its transaction.
    taken = asyncio.ensure_future(calls.add_event(db, ids[0], "taken"))
    holding = asyncio.ensure_future(journal.write(db, ids[3], "test.block", {}))
    await entered.wait()
    queue = journal._WRITERS[db].queue
    waiting = asyncio.ensure_future(calls.add_event(db, ids[1], "cancelled"))
    after = asyncio.ensure_future(calls.add_event(db, ids[2], "after"))
    await _until(lambda: len(queue) == 2)
    waiting.cancel()  # still queued: dropped
    taken.cancel()  # already in the batch: written all the same
    with pytest.raises(asyncio.CancelledError):
        await waiting
    with pytest.raises(asyncio.CancelledError):
        await taken
    release.set()
    await holding
    await after
    assert await _kinds(db, ids[0]) == ["taken"]
    assert await _kinds(db, ids[1]) == []
    assert await _kinds(db, ids[2]) == ["after"]
    task = _writer_task(db)
    assert task is not None and task.done() and not queue


async def test_close_writes_what_is_queued_first(db, tmp_path):
    ids = await _calls(db, 5)
    steps = [asyncio.ensure_future(calls.add_event(db, c, "prompt.greeting")) for c in ids]
    await _until(lambda: _writer_task(db) is not None)
    await db.close()
    assert all(s.done() and s.exception() is None for s in steps)
    task = _writer_task(db)
    assert task is not None and task.done()
    other = Database(db.url)
    try:
        for c in ids:
            assert await _kinds(other, c) == ["prompt.greeting"]
    finally:
        await other.close()


def test_each_event_loop_has_its_own_writer(tmp_path):
    db = Database(Databases(SQLITE).new(tmp_path / "ivr.sqlite3", at_head=True))
    ids: list[str] = []

    async def one_loop(n: int) -> None:
        try:
            if not ids:
                await db.create()
                ids.extend(await _calls(db, 1))
            await calls.add_event(db, ids[0], f"loop.{n}")
        finally:
            await db.close()  # its loop's writer drained; the pool's connections closed

    async def kinds() -> list[str]:
        try:
            return await _kinds(db, ids[0])
        finally:
            await db.close()

    writers = []
    for n in range(2):
        asyncio.run(one_loop(n))
        writers.append(journal._WRITERS[db])
    assert writers[0] is not writers[1] and writers[0].loop is not writers[1].loop
    assert db.before_close == [writers[1].drain]
    assert asyncio.run(kinds()) == ["loop.0", "loop.1"]
