"""`ivr.retention.purge.purge` on a real SQLite database (foreign keys on) and a data folder."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from retention_helpers import (
    CALLER,
    DOB,
    NOW,
    SUNNY,
    WAV,
    days_ago,
    rows_of,
    store_call,
    with_retention,
    write,
)
from sqlalchemy import select, text
from support.databases import foreign_key_violations

from ivr.db.engine import Database
from ivr.db.models import (
    CB_ACKNOWLEDGED,
    LEG_ACCEPTED,
    LEG_NO_ANSWER,
    OncallCallback,
    OncallLeg,
    Report,
    RetentionLog,
    Transcript,
)
from ivr.delivery import outbox
from ivr.delivery.models import DeliveryAttempt
from ivr.documents.note import build_note
from ivr.documents.store import KIND_NOTE
from ivr.oncall import callbacks
from ivr.records import calls
from ivr.retention import purge as retention
from ivr.retention.purge import Counts, log_rows, purge
from ivr.rules.model import Retention
from ivr.transcribe.service import store as store_transcript

SHORT = Retention(recordings_days=30, records_days=90)


def by_practice(summary) -> dict:
    return {c.practice_id: c for c in summary.practices}


async def recorded_paths(db, call_id) -> list[str]:
    record = await calls.show_call(db, call_id)
    assert record is not None
    return [r["path"] for r in record["recordings"]] + [
        f["recording_path"] for f in record["intake"].values() if f["recording_path"]]


async def test_recordings_go_after_n_days_and_not_before(db, data_dir, rules):
    rules = with_retention(rules, SUNNY, SHORT)
    due = await store_call(db, data_dir, started=days_ago(30), fallback=True)
    young = await store_call(db, data_dir, started=days_ago(30) + timedelta(seconds=1))
    due_files = [Path(p) for p in await recorded_paths(db, due)]
    fallback = Path((await calls.show_call(db, due))["fallback_recording"])

    summary = await purge(db, rules, NOW, data_dir, worker="test")

    sunny = by_practice(summary)[SUNNY]
    assert (sunny.calls_purged, sunny.recordings_deleted, sunny.calls_deleted) == (1, 3, 0)
    assert sunny.bytes_freed == 3 * len(WAV)
    assert not any(p.exists() for p in [*due_files, fallback])
    assert not (data_dir / "recordings" / due).exists()  # the emptied folder went too
    record = await calls.show_call(db, due)
    assert record["recordings"] == [] and record["fallback_recording"] is None
    assert record["recordings_purged_at"] == NOW.isoformat()
    assert {k: v["recording_path"] for k, v in record["intake"].items()} == {
        "callback": None, "dob": None, "name": None, "reason": None}
    # The rest of the record stays: intake values, timeline, with the purge in it.
    assert record["intake"]["dob"]["value"] == DOB
    event = record["timeline"][-1]
    assert event["kind"] == "retention.recordings_purged"
    assert event["detail"] == {"files": 3, "bytes": 3 * len(WAV)}
    note = build_note(record, rules.practices[SUNNY])
    assert ("Recordings", "deleted under the practice's retention policy") in note.rows()
    assert note.to_json()["recordings_purged_at"] == NOW.isoformat()
    # One second younger: untouched.
    assert all(Path(p).exists() for p in await recorded_paths(db, young))
    assert (await calls.show_call(db, young))["recordings_purged_at"] is None


async def test_records_go_whole_with_everything_hanging_off_them(db, data_dir, rules):
    rules = with_retention(rules, SUNNY, SHORT)
    sunny = rules.practices[SUNNY]
    old = await store_call(db, data_dir, started=days_ago(90), fallback=True)
    kept = await store_call(db, data_dir, started=days_ago(89))
    # Reaching the on-call: a live leg, a call-back acknowledged on its first attempt.
    assert await callbacks.create(db, callback_id="cb" + old[:30], call_id=old,
                                  practice=sunny, now=days_ago(90), first_at=days_ago(90),
                                  interval_seconds=300, promised=None)
    async with db.session() as s:
        for n, (kind, cb, status) in enumerate((("live", None, LEG_NO_ANSWER),
                                                ("callback", "cb" + old[:30], LEG_ACCEPTED))):
            s.add(OncallLeg(id=f"leg{n}{old[:20]}", call_id=old, callback_id=cb,
                            attempt_no=1 if cb else None, kind=kind, practice_id=SUNNY,
                            number="+16175550121", channel_id=f"ch{n}{old[:20]}",
                            status=status, placed_at=days_ago(90)))
        cb_row = await s.get(OncallCallback, "cb" + old[:30])
        cb_row.status = CB_ACKNOWLEDGED
    # Its night's report with its note, and the note's webhook delivery with an attempt.
    night = data_dir / "documents" / SUNNY / "2030-03-02"
    report_pdf, report_json = write(night / "report.pdf"), write(night / "report.json")
    note_pdf, note_json = write(night / "notes" / f"{old}.pdf"), write(night / "notes" /
                                                                        f"{old}.json")
    other_note = write(night / "notes" / f"{kept}.pdf")
    async with db.session() as s:
        s.add(Report(id="r" * 32, practice_id=SUNNY, night="2030-03-02", status="made",
                     claimed_by="t", lease_expires_at=days_ago(89), created_at=days_ago(89),
                     covers_from=days_ago(91), opening=days_ago(88), pdf_path=str(report_pdf),
                     json_path=str(report_json), deliveries="[]"))
    delivery = await outbox.enqueue(db, practice_id=SUNNY, channel="webhook",
                                    destination="https://ehr.example/hook",
                                    document_kind=KIND_NOTE, document_id=old,
                                    pdf_path=note_pdf, json_path=note_json, now=days_ago(89))
    async with db.session() as s:
        s.add(DeliveryAttempt(delivery_id=delivery, attempt_no=1, worker="t",
                              started_at=days_ago(89), result="ok"))
    async with db.session() as s:
        await s.execute(text("UPDATE deliveries SET status='succeeded'"))
    # Its reason's transcript (sealed text): part of the record, it goes with it.
    await store_transcript(db, Transcript(
        call_id=old, field="reason", status="done", language="en-US", engine="whisper",
        engine_version="t", text="my son has a cough", red_flag="", note="",
        created_at=days_ago(90)))
    before = await rows_of(db, old)
    assert all(before.values()), before

    summary = await purge(db, rules, NOW, data_dir, worker="test")

    counts = by_practice(summary)[SUNNY]
    # The old call's 3 recordings, and the 2 of the younger one (past recordings_days).
    assert (counts.calls_deleted, counts.calls_purged, counts.recordings_deleted) == (1, 1, 5)
    # The call's note (2 files); the report is 88 days old, not 90: its files stay.
    assert counts.documents_deleted == 2
    assert await rows_of(db, old) == dict.fromkeys(before, 0)
    assert not note_pdf.exists() and not note_json.exists()
    assert report_pdf.exists() and other_note.exists()
    assert not (data_dir / "recordings" / old).exists()
    assert await calls.show_call(db, kept) is not None
    async with db.engine.connect() as conn:  # nothing orphaned anywhere
        assert await foreign_key_violations(conn) == []

    # Two days on, the report's night is past records_days too: its files go, its row
    # stays (counts only; it marks the night as made).
    later = await purge(db, rules, NOW + timedelta(days=2), data_dir, worker="test")
    counts = by_practice(later)[SUNNY]
    # The younger call with its note, and report.pdf|json.
    assert counts.calls_deleted == 1 and counts.documents_deleted == 3
    assert not report_pdf.exists() and not other_note.exists()
    async with db.session() as s:
        report = await s.get(Report, "r" * 32)
        assert report is not None and report.pdf_path is None and report.json_path is None


async def test_a_pending_call_back_keeps_its_call(db, data_dir, rules):
    rules = with_retention(rules, SUNNY, SHORT)
    call_id = await store_call(db, data_dir, started=days_ago(400))
    assert await callbacks.create(db, callback_id="p" * 32, call_id=call_id,
                                  practice=rules.practices[SUNNY], now=days_ago(400),
                                  first_at=days_ago(400), interval_seconds=300, promised=None)
    other = await store_call(db, data_dir, started=days_ago(400))
    summary = await purge(db, rules, NOW, data_dir, worker="test")
    counts = by_practice(summary)[SUNNY]
    assert (counts.calls_held, counts.calls_deleted, counts.calls_purged) == (1, 1, 0)
    assert all(Path(p).exists() for p in await recorded_paths(db, call_id))
    assert await calls.show_call(db, other) is None
    # Acknowledged: the next run takes it.
    assert await callbacks.acknowledge(db, "p" * 32, clinician_id="nurse-avery",
                                       via="callback", now=days_ago(399))
    counts = by_practice(await purge(db, rules, NOW, data_dir, worker="test"))[SUNNY]
    assert counts.calls_deleted == 1 and await calls.show_call(db, call_id) is None


async def test_a_call_back_made_after_the_plan_still_keeps_its_call(db, data_dir, rules):
    """The delete re-checks under its first write (a race with the call flow)."""
    call_id = await store_call(db, data_dir, started=days_ago(400))
    assert await callbacks.create(db, callback_id="q" * 32, call_id=call_id,
                                  practice=rules.practices[SUNNY], now=NOW, first_at=NOW,
                                  interval_seconds=300, promised=None)
    counts = Counts(SUNNY, 30, 90)
    await retention._delete_record(db, call_id, data_dir.resolve(), NOW, False, counts)
    await retention._purge_recordings(db, call_id, data_dir.resolve(), NOW, False, counts)
    assert (counts.calls_deleted, counts.calls_purged, counts.recordings_deleted) == (0, 0, 0)
    record = await calls.show_call(db, call_id)
    assert record is not None and record["recordings_purged_at"] is None
    assert all(Path(p).exists() for p in await recorded_paths(db, call_id))


async def test_a_note_still_being_delivered_keeps_its_call(db, data_dir, rules):
    rules = with_retention(rules, SUNNY, SHORT)
    call_id = await store_call(db, data_dir, started=days_ago(100))
    await outbox.enqueue(db, practice_id=SUNNY, channel="webhook",
                         destination="https://ehr.example/hook", document_kind=KIND_NOTE,
                         document_id=call_id, now=days_ago(99))
    counts = by_practice(await purge(db, rules, NOW, data_dir, worker="test"))[SUNNY]
    assert counts.calls_held == 1 and (await rows_of(db, call_id))["calls"] == 1


async def test_a_call_in_progress_is_untouched(db, data_dir, rules):
    rules = with_retention(rules, SUNNY, Retention(0, 0))  # all else due at once
    running = await store_call(db, data_dir, started=NOW - timedelta(hours=3), ended=False)
    finished = await store_call(db, data_dir, started=NOW - timedelta(hours=3))
    counts = by_practice(await purge(db, rules, NOW, data_dir, worker="test"))[SUNNY]
    assert (counts.calls_held, counts.calls_deleted) == (1, 1)
    assert await calls.show_call(db, finished) is None
    assert all(Path(p).exists() for p in await recorded_paths(db, running))
    assert (await calls.show_call(db, running))["recordings_purged_at"] is None


@pytest.mark.parametrize("where", ["outside", "dotdot", "symlink"])
async def test_a_path_outside_the_data_folder_is_refused(db, data_dir, rules, tmp_path,
                                                         caplog, where):
    rules = with_retention(rules, SUNNY, SHORT)
    outside = tmp_path / "elsewhere"
    if where == "outside":
        folder = outside
    elif where == "dotdot":
        folder = data_dir / "recordings" / ".." / ".." / "elsewhere"
    else:
        outside.mkdir()
        (data_dir / "recordings").mkdir()
        (data_dir / "recordings" / "link").symlink_to(outside, target_is_directory=True)
        folder = data_dir / "recordings" / "link"
    call_id = await store_call(db, data_dir, started=days_ago(40), recording_dir=folder)
    caplog.set_level(logging.WARNING, logger="ivr.retention.purge")

    counts = by_practice(await purge(db, rules, NOW, data_dir, worker="test"))[SUNNY]

    assert (counts.files_refused, counts.recordings_deleted, counts.calls_purged) == (2, 0, 0)
    assert (outside / "name.wav").exists() and (outside / "reason.wav").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(call_id in w and "outside the data folder" in w for w in warnings)
    assert not any(str(outside) in w for w in warnings)
    # The record still points at the files: the next run warns again.
    assert (await calls.show_call(db, call_id))["recordings_purged_at"] is None
    counts = by_practice(await purge(db, rules, NOW, data_dir, worker="test"))[SUNNY]
    assert counts.files_refused == 2


async def test_dry_run_deletes_nothing_and_logs_what_would_go(db, data_dir, rules):
    rules = with_retention(rules, SUNNY, SHORT)
    purged = await store_call(db, data_dir, started=days_ago(40))
    deleted = await store_call(db, data_dir, started=days_ago(100))
    dry = by_practice(await purge(db, rules, NOW, data_dir, dry_run=True, worker="t"))[SUNNY]
    assert (dry.calls_purged, dry.calls_deleted, dry.recordings_deleted) == (1, 1, 4)
    for call_id in (purged, deleted):
        record = await calls.show_call(db, call_id)
        assert record is not None and record["recordings_purged_at"] is None
        assert all(Path(p).exists() for p in await recorded_paths(db, call_id))
    rows = await log_rows(db)
    assert {r["practice_id"]: r["dry_run"] for r in rows} == {
        SUNNY: True, "mesa-family": True, None: True}
    real = by_practice(await purge(db, rules, NOW, data_dir, worker="t"))[SUNNY]
    assert real.to_json() == dry.to_json()  # the dry run said exactly what went


async def test_every_run_logs_a_row_per_practice_without_patient_data(db, data_dir, rules):
    rules = with_retention(rules, SUNNY, SHORT)
    await store_call(db, data_dir, started=days_ago(100))
    await store_call(db, data_dir, started=days_ago(400), practice_id=None)  # unknown number
    await store_call(db, data_dir, started=days_ago(400), practice_id="closed-practice")
    first = await purge(db, rules, NOW, data_dir, worker="host:1")
    second = await purge(db, rules, NOW, data_dir, worker="host:1")
    rows = await log_rows(db)
    assert len(rows) == 8 and {r["run_id"] for r in rows} == {first.run_id, second.run_id}
    newest = {r["practice_id"]: r for r in reversed(rows) if r["run_id"] == first.run_id}
    assert list(newest) == ["mesa-family", SUNNY, "closed-practice", None]
    assert (newest[SUNNY]["calls_deleted"], newest[SUNNY]["records_days"]) == (1, 90)
    # Defaults for unknown numbers and for a practice no longer in the rules: recordings
    # after 365 days, records kept.
    for pid in (None, "closed-practice"):
        assert (newest[pid]["recordings_days"], newest[pid]["records_days"]) == (365, None)
        assert (newest[pid]["calls_purged"], newest[pid]["calls_deleted"]) == (1, 0)
    text_of_rows = json.dumps(rows)
    assert CALLER not in text_of_rows and DOB not in text_of_rows
    # The second run found nothing left to do (idempotent).
    assert all(c.calls_purged == c.calls_deleted == c.recordings_deleted == c.bytes_freed == 0
               for c in second.practices)
    async with db.session() as s:
        assert len((await s.scalars(select(RetentionLog))).all()) == 8


async def test_a_fallback_message_reconciled_after_the_purge_goes_next_time(db, data_dir,
                                                                             rules):
    rules = with_retention(rules, SUNNY, SHORT)
    call_id = await store_call(db, data_dir, started=days_ago(40))
    await purge(db, rules, NOW, data_dir, worker="t")
    late = write(data_dir / "recordings" / "fallback" / "late.wav")
    await calls.update_call(db, call_id, fallback_recording=str(late))
    counts = by_practice(await purge(db, rules, NOW, data_dir, worker="t"))[SUNNY]
    assert (counts.calls_purged, counts.recordings_deleted) == (1, 1) and not late.exists()


async def test_two_purges_at_once_on_two_engines_do_not_fail(db, data_dir, rules, db_url):
    rules = with_retention(rules, SUNNY, SHORT)
    purged = [await store_call(db, data_dir, started=days_ago(40 + i)) for i in range(12)]
    deleted = [await store_call(db, data_dir, started=days_ago(100 + i), fallback=True)
               for i in range(12)]
    other = Database(db_url)
    try:
        await other.create()
        one, two = await asyncio.gather(purge(db, rules, NOW, data_dir, worker="a"),
                                        purge(other, rules, NOW, data_dir, worker="b"))
    finally:
        await other.close()
    a, b = by_practice(one)[SUNNY], by_practice(two)[SUNNY]
    assert a.recordings_deleted + b.recordings_deleted == 12 * 2 + 12 * 3
    assert a.calls_deleted + b.calls_deleted == 12
    assert a.calls_purged + b.calls_purged == 12
    for call_id in deleted:
        assert await calls.show_call(db, call_id) is None
    for call_id in purged:
        assert (await calls.show_call(db, call_id))["recordings_purged_at"] is not None
    assert not any((data_dir / "recordings").rglob("*.wav"))
    async with db.engine.connect() as conn:
        assert await foreign_key_violations(conn) == []
    assert len(await log_rows(db)) == 6
