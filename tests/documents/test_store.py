"""Making reports against the database: once under a race, takeover, notes, the scheduler."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from doc_helpers import ny, store_call
from sqlalchemy import func, select

from ivr.db.engine import Database
from ivr.db.models import REPORT_MADE, REPORT_MAKING, Report
from ivr.delivery import outbox
from ivr.delivery.models import Delivery
from ivr.documents import store
from ivr.documents.scheduler import ReportScheduler
from ivr.records.overrides import NewOverride, clear_overrides, set_override

OPENING = ny("2026-11-27 08:00")


async def _count(db: Database, model) -> int:
    async with db.session() as s:
        return await s.scalar(select(func.count()).select_from(model))


async def _night_calls(db: Database) -> list[str]:
    return [
        await store_call(db, started=ny("2026-11-25 21:00"), uniqueid="a"),
        await store_call(db, started=ny("2026-11-26 02:00"), disposition=None,
                         abandoned_step="triage", end_reason="caller_hangup", uniqueid="b"),
        await store_call(db, started=ny("2026-11-25 11:00"), route="overflow",
                         disposition="appointment", uniqueid="c"),
        await store_call(db, started=ny("2026-11-27 08:30"), uniqueid="next-day"),
        await store_call(db, started=ny("2026-11-26 03:00"), practice_id="mesa-family",
                         uniqueid="other-practice"),
    ]


async def test_a_report_is_made_once_and_its_documents_enqueued(db, sunny, tmp_path: Path):
    a, b, c, *_ = await _night_calls(db)
    made = await store.make_report(db, sunny, date(2026, 11, 26), OPENING + timedelta(
        seconds=30), out_dir=tmp_path / "docs", worker="w1")
    assert made.status == store.MADE and made.night == date(2026, 11, 26)
    assert (made.calls, made.needs_action) == (3, 1)
    # Report to fax, e-mail and webhook; each call's note to the webhook.
    assert len(made.deliveries) == 3 + 3
    rows = await outbox.list_deliveries(db, with_attempts=False)
    kinds = sorted((r["channel"], r["document_kind"], r["document_id"]) for r in rows)
    assert kinds == sorted([("fax", "morning_report", "sunny-pediatrics:2026-11-26"),
                            ("email", "morning_report", "sunny-pediatrics:2026-11-26"),
                            ("webhook", "morning_report", "sunny-pediatrics:2026-11-26"),
                            ("webhook", "call_note", a), ("webhook", "call_note", b),
                            ("webhook", "call_note", c)])
    assert {r["destination"] for r in rows} == {
        "+16175550190", "frontdesk@sunny-pediatrics.example",
        "https://ehr.sunny-pediatrics.example/hooks/answering"}
    doc = json.loads(made.json_path.read_text())
    assert [x["call_id"] for x in doc["calls"]] == [c, a, b]  # time order, this night only
    assert doc["needs_action"][0]["call_id"] == b
    assert made.pdf_path.read_bytes().startswith(b"%PDF")
    assert oct(made.pdf_path.stat().st_mode & 0o777) == "0o600"
    note = json.loads((made.pdf_path.parent / "notes" / f"{a}.json").read_text())
    assert note["callback"]["number"] == "+16175550142"
    assert note["url"] is None and doc["calls"][0]["url"] is None  # no IVR_WEB_PUBLIC_URL

    early = await store.make_report(db, sunny, date(2026, 11, 27), OPENING + timedelta(
        minutes=5), out_dir=tmp_path / "docs", worker="w2")
    assert early.status == store.NOT_DUE  # Friday's night is not over on Friday morning
    again = await store.make_report(db, sunny, date(2026, 11, 25), OPENING + timedelta(
        minutes=5), out_dir=tmp_path / "docs", worker="w2")
    assert again.status == store.EXISTS  # the 25th names the same night
    assert await _count(db, Delivery) == 6 and await _count(db, Report) == 1


async def test_two_controllers_racing_on_one_database_make_it_once(db, sunny, tmp_path: Path):
    await _night_calls(db)
    url = db.url
    others = [Database(url) for _ in range(3)]  # separate engines on the same database
    try:
        for night in (date(2026, 11, 24), date(2026, 11, 26), date(2026, 11, 27)):
            results = await asyncio.gather(*(
                store.make_report(engine, sunny, night, ny("2026-11-28 10:00"),
                                  out_dir=tmp_path / f"docs{i}", worker=f"w{i}")
                for i, engine in enumerate([db, *others])))
            statuses = sorted(r.status for r in results)
            assert statuses.count(store.MADE) == 1, statuses
            assert set(statuses) <= {store.MADE, store.EXISTS, store.BUSY}
    finally:
        for engine in others:
            await engine.close()
    reports = await store.report_rows(db)
    assert sorted(r["night"] for r in reports) == ["2026-11-24", "2026-11-26", "2026-11-27"]
    assert all(r["status"] == REPORT_MADE for r in reports)
    # 3 report deliveries per night, plus one webhook note per call of that night.
    assert await _count(db, Delivery) == 3 * 3 + 3 + 1


async def test_a_claim_whose_controller_died_is_taken_over(db, sunny, tmp_path: Path):
    await _night_calls(db)
    window = await store.resolve_window(db, sunny, date(2026, 11, 26))
    async with db.session() as s:
        s.add(Report(id="dead", practice_id="sunny-pediatrics", night="2026-11-26",
                     status=REPORT_MAKING, claimed_by="dead-controller",
                     lease_expires_at=OPENING + timedelta(minutes=10), created_at=OPENING,
                     covers_from=window.covers_from, closing=window.closing,
                     opening=window.opening, deliveries="[]"))
    early = await store.make_report(db, sunny, date(2026, 11, 26), OPENING + timedelta(
        minutes=5), out_dir=tmp_path, worker="w2")
    assert early.status == store.BUSY  # the lease still runs
    late = await store.make_report(db, sunny, date(2026, 11, 26), OPENING + timedelta(
        minutes=11), out_dir=tmp_path, worker="w2")
    assert late.status == store.MADE and late.report_id == "dead"
    [row] = await store.report_rows(db)
    assert row["status"] == REPORT_MADE and row["claimed_by"] == "w2"


async def test_the_next_report_starts_where_the_last_one_ended(db, sunny, tmp_path: Path):
    await store_call(db, started=ny("2026-11-23 12:00"), uniqueid="monday-noon")
    first = await store.make_report(db, sunny, date(2026, 11, 20), ny("2026-11-27 09:00"),
                                    out_dir=tmp_path, worker="w")
    assert first.calls == 0  # Friday the 20th's night ends Saturday 09:00
    later = await store.make_report(db, sunny, date(2026, 11, 26), ny("2026-11-27 09:00"),
                                    out_dir=tmp_path, worker="w")
    doc = json.loads(later.json_path.read_text())
    # No report for the nights between: this one reaches back to Saturday 09:00.
    assert doc["window"]["covers_from"]["local"] == "2026-11-21T09:00-05:00"
    assert later.calls == 1


async def test_manual_overrides_are_read_as_they_were(db, sunny):
    await set_override(db, NewOverride("sunny-pediatrics", False, ny("2026-11-27 07:00"),
                                       ny("2026-11-28 00:00"), "snow day"),
                       ny("2026-11-27 07:00"))
    await clear_overrides(db, "sunny-pediatrics", ny("2026-11-27 12:00"))
    [snow] = await store.manual_overrides(db, "sunny-pediatrics", ny("2026-11-20 00:00"),
                                          ny("2026-12-01 00:00"))
    assert snow.end == ny("2026-11-27 12:00")  # cleared at noon: the office opened then
    window = await store.resolve_window(db, sunny, date(2026, 11, 26))
    assert window.opening == ny("2026-11-27 12:00")


async def test_the_scheduler_makes_each_night_at_its_opening(db, rules, tmp_path: Path):
    sunny = rules.practices["sunny-pediatrics"]
    quiet = replace(rules, practices={"sunny-pediatrics": sunny})
    sched = ReportScheduler(db, lambda: quiet, tmp_path, worker="sched")
    assert await sched.tick(ny("2026-11-27 08:05")) == []  # no call yet: nothing to report
    await store_call(db, started=ny("2026-11-24 21:00"), uniqueid="tuesday-night")
    await store_call(db, started=ny("2026-11-26 21:00"), uniqueid="thanksgiving")
    # The controller was down since Tuesday: the missed nights are made, oldest first.
    made = await sched.tick(ny("2026-11-27 07:59"))
    assert [(m.night, m.status, m.calls) for m in made] == [(date(2026, 11, 24), "made", 1)]
    assert await sched.tick(ny("2026-11-27 07:59:30")) == []
    made = await sched.tick(ny("2026-11-27 08:00"))
    assert [(m.night, m.status, m.calls) for m in made] == [(date(2026, 11, 26), "made", 1)]
    assert await sched.tick(ny("2026-11-27 08:01")) == []  # made once
    other = ReportScheduler(db, lambda: quiet, tmp_path, worker="other")
    assert await other.tick(ny("2026-11-27 08:02")) == []  # a second controller agrees


async def test_the_scheduler_survives_a_database_error(sunny, rules, tmp_path: Path):
    broken = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'no.sqlite3'}")
    sched = ReportScheduler(broken, lambda: rules, tmp_path, interval=0.01,
                            clock=lambda: ny("2026-11-27 08:05"))
    task = asyncio.create_task(sched.run())
    await asyncio.sleep(0.1)
    assert not task.done()  # errors are logged, the loop goes on
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await broken.close()


async def test_with_a_public_url_each_call_of_the_report_links_its_page(db, sunny,
                                                                        tmp_path: Path):
    a, b, *_ = await _night_calls(db)
    made = await store.make_report(db, sunny, date(2026, 11, 26), OPENING, out_dir=tmp_path,
                                   worker="w1", link_base="https://portal.example")
    doc = json.loads(made.json_path.read_text())
    assert {x["url"] for x in doc["calls"]} >= {f"https://portal.example/calls/{a}"}
    assert doc["needs_action"][0]["url"] == f"https://portal.example/calls/{b}"
    note = json.loads((made.pdf_path.parent / "notes" / f"{a}.json").read_text())
    assert note["url"] == f"https://portal.example/calls/{a}"
    assert f"https://portal.example/calls/{a}".encode() in (
        made.pdf_path.parent / "notes" / f"{a}.pdf").read_bytes()
