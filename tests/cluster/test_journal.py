"""The write-ahead journal (ivr.records.journal) with a database that really goes away:
PostgreSQL stopped (immediate, a crash) and started again; SQLite's folder moved away and
back (a disk that is gone). A call's steps taken meanwhile are kept, sealed, in a 0600
file, and written once when the database is back, in order, even when replayed twice."""

from __future__ import annotations

import shutil
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from support.databases import POSTGRESQL, new_server

from ivr.db.engine import Database
from ivr.db.kinds import LegKind, LegStatus
from ivr.db.models import SOURCE_CALLER_ID, SOURCE_KEYED, OncallLeg
from ivr.oncall import leg_rows
from ivr.records import calls, journal
from ivr.records.journal import Journal, replay

OWN_SLOT = 16  # PortPlan.fixed(16), as tests/cluster/test_database_faults.py (one at a time)
DOB = "1990-01-02"
NURSE = "+16175550199"


class FailingDatabase:
    """A database of one kind that can be taken away and given back, for real."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind, self.folder = kind, folder
        self.server = None
        if kind == POSTGRESQL:
            # Durable, unlike the suite's fast server (its commits may be lost in a crash).
            self.server = new_server(OWN_SLOT, tuning={})
            self.server.start()
            self.server.create_database("ivr")
            self.url = self.server.url()
        else:
            (folder / "db").mkdir()
            self.url = f"sqlite+aiosqlite:///{folder / 'db' / 'ivr.sqlite3'}"
        self.db = Database(self.url)

    async def down(self) -> None:
        if self.server is not None:
            self.server.stop("immediate")
        else:
            # The folder gone: SQLite cannot open the file; pooled connections closed.
            await self.db.engine.dispose()
            (self.folder / "db").rename(self.folder / "db-away")

    async def up(self) -> None:
        if self.server is not None:
            self.server.start()
        else:
            (self.folder / "db-away").rename(self.folder / "db")

    def remove(self) -> None:
        if self.server is not None:
            self.server.stop("immediate")
            shutil.rmtree(self.server.folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", POSTGRESQL])
async def failing(request, tmp_path):
    made = FailingDatabase(request.param, tmp_path)
    await made.db.create()
    try:
        yield made
    finally:
        await made.db.close()
        made.remove()


async def _call(db: Database) -> str:
    call_id = await calls.start_call(db, uniqueid="1700000000.1", node="n1",
                                     dialled="+16175550100", forwarded_from="",
                                     caller="+16175550123", started_at=calls.now())
    await calls.save_intake(db, call_id, "callback", value="+16175550123",
                            source=SOURCE_CALLER_ID, confirmed=True)
    return call_id


async def _steps_while_down(db: Database, call_id: str) -> None:
    """What the flow does after the first answer: every step returns, none raises."""
    await calls.add_event(db, call_id, "intake.dob.asked")
    await calls.save_intake(db, call_id, "dob", value=DOB, source=SOURCE_KEYED)
    await calls.confirm_intake(db, call_id, "dob")
    await calls.add_recording(db, call_id, "name", path="/data/r/name.wav.enc",
                              duration_seconds=1.5, size_bytes=900, peak=9000, rms=800.0)
    await calls.update_call(db, call_id, disposition="routine")
    await calls.finish_call(db, call_id, result="done", hung_up=False)


async def test_steps_kept_while_the_database_is_gone_are_written_once(failing, tmp_path):
    db = failing.db
    kept = Journal(tmp_path / "journal" / "controller-4573.jsonl").load()
    journal.attach(db, kept)
    call_id = await _call(db)
    assert not kept.path.exists()  # nothing kept while the database answers
    await failing.down()
    await _steps_while_down(db, call_id)
    assert [e.op for e in kept.pending()] == [
        "event", "intake", "confirm", "recording", "update", "finish"]
    # The file: 0600 in a 0700 folder, the values sealed (neither the date nor the path).
    assert stat.S_IMODE(kept.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.path.parent.stat().st_mode) == 0o700
    raw = kept.path.read_bytes()
    assert DOB.encode() not in raw and b"name.wav" not in raw and b"routine" not in raw
    assert await replay(db, kept) == 0 and len(kept) == 6  # still gone: all kept
    before_replay = kept.path.read_bytes()

    await failing.up()
    assert await replay(db, kept) == 6
    assert len(kept) == 0 and not kept.path.exists()
    record = await calls.show_call(db, call_id)
    assert record is not None
    assert record["intake"]["dob"]["value"] == DOB and record["intake"]["dob"]["confirmed"]
    assert record["intake"]["callback"]["value"] == "+16175550123"
    assert record["disposition"] == "routine" and record["end_reason"] == "completed"
    assert [r["field"] for r in record["recordings"]] == ["name"]
    timeline = [e["kind"] for e in record["timeline"]]
    assert timeline[-4:] == ["intake.dob.asked", "intake.dob.captured",
                             "intake.dob.confirmed", "controller.finished"]

    # A crash between the commits and the journal's marks: the same file replayed again
    # (by the controller's next start) writes nothing twice.
    kept.path.write_bytes(before_replay)
    again = Journal(kept.path).load()
    assert len(again) == 6
    assert await replay(db, again) == 0 and len(again) == 0
    assert [e["kind"] for e in (await calls.show_call(db, call_id))["timeline"]] == timeline
    journal.attach(db, None)


async def test_a_step_the_database_refuses_is_raised_not_kept(failing, tmp_path):
    """A bug or a constraint is no outage: raised as before, nothing journaled."""
    kept = Journal(tmp_path / "journal.jsonl").load()
    journal.attach(db := failing.db, kept)
    with pytest.raises(KeyError):
        await calls.update_call(db, "no-such-call", disposition="routine")
    assert len(kept) == 0 and not kept.path.exists()
    journal.attach(db, None)


async def test_later_steps_of_a_call_wait_behind_its_kept_ones(failing, tmp_path):
    """Once a step of a call is kept, its next steps are kept too even with the database
    back, and reach it in order (the confirmation after the field it confirms); another
    call's steps go straight in."""
    db = failing.db
    kept = Journal(tmp_path / "journal.jsonl").load()
    journal.attach(db, kept)
    call_id = await _call(db)
    await failing.down()
    await calls.save_intake(db, call_id, "dob", value=DOB, source=SOURCE_KEYED)
    await failing.up()
    await calls.confirm_intake(db, call_id, "dob")  # the database is back: still behind
    other = await calls.start_call(db, uniqueid="1700000000.2", node="n1", dialled="",
                                   forwarded_from="", caller="", started_at=calls.now())
    await calls.add_event(db, other, "prompt.greeting")
    assert [(e.call_id, e.op) for e in kept.pending()] == [(call_id, "intake"),
                                                           (call_id, "confirm")]
    assert await replay(db, kept) == 2
    record = await calls.show_call(db, call_id)
    assert record is not None and record["intake"]["dob"]["confirmed"]
    await calls.add_event(db, call_id, "prompt.triage")  # straight in again
    assert len(kept) == 0
    journal.attach(db, None)


async def test_a_clinician_leg_placed_and_ended_while_the_database_is_gone(failing, tmp_path):
    """The dialler's writes are steps of the leg's call: a leg placed, answered,
    accepted, bridged and hung up during an outage is kept (its number sealed) and lands
    once, closed, when the database is back; a later outcome does not override the
    first one stored."""
    db = failing.db
    kept = Journal(tmp_path / "journal.jsonl").load()
    journal.attach(db, kept)
    call_id = await _call(db)
    await failing.down()
    placed = calls.now()
    await leg_rows.insert(db, call_id, {
        "id": "leg1", "callback_id": None, "attempt_no": None, "kind": LegKind.LIVE,
        "practice_id": "p1", "clinician_id": "nurse", "role": "nurse",
        "number": NURSE, "step_index": 0, "channel_id": "ivrleg-leg1",
        "status": LegStatus.PLACING, "placed_at": placed})
    await leg_rows.update(db, call_id, "leg1", status=LegStatus.ANSWERED,
                          answered_at=placed + timedelta(seconds=4), channel="PJSIP/gw-1")
    await leg_rows.finish(db, call_id, "leg1", status=LegStatus.ACCEPTED,
                          detail="acknowledged", ring_ms=4000, ended_at=None, fields={})
    await leg_rows.update(db, call_id, "leg1", bridged_at=placed + timedelta(seconds=10))
    await leg_rows.finish(db, call_id, "leg1", status=LegStatus.DECLINED, detail="late",
                          ring_ms=1, ended_at=None, fields={})
    await leg_rows.hung_up(db, call_id, "leg1", placed + timedelta(seconds=40))
    assert [e.op for e in kept.pending()] == [
        "leg.insert", "leg.update", "leg.finish", "leg.update", "leg.finish", "leg.hung_up"]
    assert NURSE.encode() not in kept.path.read_bytes()

    await failing.up()
    assert await replay(db, kept) == 6 and not kept.path.exists()
    async with db.session() as s:
        leg = await s.get(OncallLeg, "leg1")
        assert leg is not None
        assert (leg.status, leg.detail, leg.ring_ms) == (LegStatus.ACCEPTED, "acknowledged",
                                                         4000)
        assert leg.number == NURSE and leg.channel == "PJSIP/gw-1"
        assert leg.ended_at == placed + timedelta(seconds=40) and leg.bridge_seconds == 30.0
    journal.attach(db, None)


def test_a_cut_last_line_is_skipped(tmp_path, caplog):
    """A crash while a line was written leaves half a line: the rest still loads."""
    from ivr.records import calls as _registers_the_steps  # noqa: F401

    kept = Journal(tmp_path / "journal.jsonl")
    kept.append("c1", "event", {"kind": "x", "at": calls.now(), "detail": {}})
    with open(kept.path, "a") as out:
        out.write('{"id":"abc","call":"c1","op":"ev')
    assert [e.op for e in Journal(kept.path).load().pending()] == ["event"]
    assert "line 2 unreadable" in caplog.text


def test_what_waits_in_the_journal_and_what_is_raised():
    """An outage waits; a constraint or a schema bug (SQLite says "no such column" with
    the same exception type as "unable to open database file") is raised."""
    import sqlite3

    from sqlalchemy.exc import IntegrityError, OperationalError

    from ivr.records.journal import cannot_write

    def sqlite_error(message: str) -> OperationalError:
        return OperationalError("INSERT ...", {}, sqlite3.OperationalError(message))
    assert cannot_write(ConnectionRefusedError(111, "refused"))
    assert cannot_write(sqlite_error("unable to open database file"))
    assert cannot_write(sqlite_error("database is locked"))
    assert not cannot_write(sqlite_error("no such column: calls.nothing"))
    assert not cannot_write(IntegrityError("INSERT ...", {}, sqlite3.IntegrityError("x")))
    assert not cannot_write(KeyError("no-such-call"))
