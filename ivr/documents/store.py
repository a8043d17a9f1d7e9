"""The I/O around the documents: read calls, claim a night's report once, write, enqueue.

Made once: the `reports` table has one row per (practice, night); a controller claims the
night by inserting it (of two racing controllers one insert fails), makes the documents,
then marks the row `made` in the same transaction that enqueues the deliveries. A claim
carries a lease: if its controller dies before `made`, another takes the night over when
the lease ends. Files are written atomically and enqueueing is idempotent per document
and destination (ivr.delivery.outbox), so a takeover repeats nothing the practice sees.

What goes where (the practice's `delivery` section):
- the morning report (PDF; JSON for the webhook) to every channel given: fax, e-mail,
  webhook. It carries every call in brief, the ones needing action first.
- each call's note (JSON + PDF) to the webhook only: one structured document per call is
  what a record system takes in; a fax or an inbox would get one page per call.
A call's note is final when its night's report is made (the practice's opening): by then
the call has ended and its call-backs have had the whole night; whatever is still open is
what the report lists as needing action. One snapshot, so the report and the notes agree.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ivr import clock
from ivr.db.claims import lock_or_skip
from ivr.db.engine import Database
from ivr.db.models import REPORT_MADE, REPORT_MAKING, Call, ManualOverride, Report
from ivr.delivery import outbox
from ivr.delivery.models import EMAIL, FAX, WEBHOOK
from ivr.documents.note import Note, build_note, call_url
from ivr.documents.pdf import note_pdf, report_pdf
from ivr.documents.report import LOOKBACK_DAYS, NightWindow, build_report, night_window
from ivr.documents.report import Report as ReportDoc
from ivr.records import calls
from ivr.rules.model import Delivery, Override, Practice
from ivr.rules.timeutil import require_aware

log = logging.getLogger(__name__)

KIND_REPORT = "morning_report"
KIND_NOTE = "call_note"
LEASE = timedelta(minutes=10)

# Outcomes of make_report
MADE = "made"  # this call made it and enqueued its deliveries
EXISTS = "exists"  # made before (by us or another controller)
BUSY = "busy"  # another controller holds the claim right now
NO_NIGHT = "no_night"  # the practice never opens again: no night to report
NOT_DUE = "not_due"  # the night is not over: made now, it would miss the rest of it


@dataclass(frozen=True)
class Made:
    status: str
    practice_id: str
    night: date | None
    report_id: str | None = None
    pdf_path: Path | None = None
    json_path: Path | None = None
    calls: int = 0
    needs_action: int = 0
    deliveries: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "practice_id": self.practice_id,
                "night": self.night.isoformat() if self.night else None,
                "report_id": self.report_id,
                "pdf_path": str(self.pdf_path) if self.pdf_path else None,
                "json_path": str(self.json_path) if self.json_path else None,
                "calls": self.calls, "needs_action": self.needs_action,
                "deliveries": list(self.deliveries)}


# --- reading -----------------------------------------------------------------------------

async def manual_overrides(db: Database, practice_id: str, start: datetime,
                           end: datetime) -> tuple[Override, ...]:
    """The manual overrides that were in force at some time in [start, end), as they were
    (a cleared override ends when it was cleared), oldest first like the call flow's."""
    query = (select(ManualOverride)
             .where(ManualOverride.practice_id == practice_id, ManualOverride.start < end,
                    ManualOverride.end > start,
                    or_(ManualOverride.cleared_at.is_(None), ManualOverride.cleared_at > start))
             .order_by(ManualOverride.created_at, ManualOverride.id))
    async with db.session() as s:
        rows = (await s.scalars(query)).all()
    out = []
    for r in rows:
        stop = min(r.end, r.cleared_at) if r.cleared_at is not None else r.end
        if stop > r.start:
            out.append(Override(start=r.start, end=stop, is_open=r.is_open, reason=r.reason,
                                manual=True))
    return tuple(out)


async def calls_between(db: Database, practice_id: str, start: datetime,
                        end: datetime) -> list[dict[str, Any]]:
    """Full records (records.calls.show_call) of the practice's calls started in [start, end)."""
    async with db.session() as s:
        ids = (await s.scalars(
            select(Call.id).where(Call.practice_id == practice_id, Call.started_at >= start,
                                  Call.started_at < end)
            .order_by(Call.started_at, Call.id))).all()
    out = []
    for ident in ids:
        record = await calls.show_call(db, ident)
        if record is not None:
            out.append(record)
    return out


async def previous_end(db: Database, practice_id: str, opening: datetime) -> datetime | None:
    """Where the last report before this opening stopped (its opening), if there is one."""
    async with db.session() as s:
        return await s.scalar(select(func.max(Report.opening)).where(
            Report.practice_id == practice_id, Report.opening < opening))


async def first_call_at(db: Database, practice_id: str) -> datetime | None:
    async with db.session() as s:
        return await s.scalar(select(func.min(Call.started_at)).where(
            Call.practice_id == practice_id))


async def report_rows(db: Database, practice_id: str | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
    query = select(Report).order_by(Report.opening.desc()).limit(limit)
    if practice_id:
        query = query.where(Report.practice_id == practice_id)
    async with db.session() as s:
        rows = (await s.scalars(query)).all()
    return [{"id": r.id, "practice_id": r.practice_id, "night": r.night, "status": r.status,
             "claimed_by": r.claimed_by, "made_at": clock.iso(r.made_at),
             "covers_from": clock.iso(r.covers_from), "closing": clock.iso(r.closing),
             "opening": clock.iso(r.opening), "calls": r.call_count,
             "needs_action": r.needs_action, "pdf_path": r.pdf_path,
             "json_path": r.json_path, "deliveries": json.loads(r.deliveries or "[]")}
            for r in rows]


async def resolve_window(db: Database, practice: Practice, night: date | NightWindow,
                         manual: tuple[Override, ...] | None = None) -> NightWindow | None:
    """The night's window, starting where the previous stored report ended (if any)."""
    if isinstance(night, NightWindow):
        return night
    first = night_window(practice, night, manual or ())
    if first is None:
        return None
    if manual is None:
        manual = await manual_overrides(db, practice.id, first.covers_from - timedelta(
            days=LOOKBACK_DAYS), first.opening + timedelta(days=LOOKBACK_DAYS))
        first = night_window(practice, night, manual)
        if first is None:
            return None
    before = await previous_end(db, practice.id, first.opening)
    return night_window(practice, night, manual, before) if before is not None else first


async def preview_report(db: Database, practice: Practice, night: date | NightWindow,
                         now: datetime) -> ReportDoc | None:
    """The report as it would be made now (nothing claimed, written or sent)."""
    window = await resolve_window(db, practice, night)
    if window is None:
        return None
    records = await calls_between(db, practice.id, window.covers_from, window.opening)
    return build_report(practice, window, records, now)


async def note_for_call(db: Database, ident: str,
                        practices: dict[str, Practice]) -> Note | None:
    record = await calls.show_call(db, ident)
    if record is None:
        return None
    return build_note(record, practices.get(record.get("practice_id") or ""))


# --- making, once ------------------------------------------------------------------------

async def _claim(db: Database, practice_id: str, window: NightWindow, now: datetime,
                 worker: str) -> tuple[str | None, str]:
    """(report id, MADE) when this worker now holds the night; (None, EXISTS/BUSY) else."""
    night = window.night.isoformat()
    report_id = secrets.token_hex(16)
    values = dict(covers_from=window.covers_from, closing=window.closing,
                  opening=window.opening, lease_expires_at=now + LEASE, claimed_by=worker)
    try:
        async with db.session() as s:
            s.add(Report(id=report_id, practice_id=practice_id, night=night,
                         status=REPORT_MAKING, created_at=now, deliveries="[]", **values))
        return report_id, MADE
    except IntegrityError:
        pass
    async with db.session() as s:
        row = await s.scalar(select(Report).where(Report.practice_id == practice_id,
                                                  Report.night == night))
        if row is None or row.status == REPORT_MADE:
            return None, EXISTS
        if row.lease_expires_at > now:
            return None, BUSY
        # The claimant's lease ran out (it died or hung): take the night over.
        if not await lock_or_skip(s, Report.id, Report.id == row.id,
                                  Report.status == REPORT_MAKING):
            return None, BUSY  # another worker is taking it over right now
        taken = await s.execute(
            update(Report).where(Report.id == row.id, Report.status == REPORT_MAKING,
                                 Report.claimed_by == row.claimed_by,
                                 Report.lease_expires_at == row.lease_expires_at)
            .values(**values).execution_options(synchronize_session=False))
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None, BUSY
        log.warning("report %s night %s: lease of %s expired, taken over", practice_id,
                    night, row.claimed_by)
        return row.id, MADE


def _write(folder: Path, report: ReportDoc, link_base: str = ""
           ) -> tuple[Path, Path, dict[str, tuple[Path, Path]]]:
    """Render and write the report and every note (run in a thread: PDFs take a moment).
    With `link_base`, each call carries the address of its portal page ("url")."""
    doc = report.to_json()
    for entry in [*doc["calls"], *doc["needs_action"]]:
        entry["url"] = call_url(link_base, entry["call_id"])
    pdf, data = outbox.write_payload(folder, "report", report_pdf(report, link_base), doc)
    assert pdf is not None and data is not None
    notes: dict[str, tuple[Path, Path]] = {}
    for note in report.notes:
        npdf, njson = outbox.write_payload(
            folder / "notes", note.call_id, note_pdf(note, report.generated_at, link_base),
            {**note.to_json(), "url": call_url(link_base, note.call_id)})
        assert npdf is not None and njson is not None
        notes[note.call_id] = (npdf, njson)
    return pdf, data, notes


def destinations(delivery: Delivery) -> list[tuple[str, str, dict[str, Any]]]:
    """(channel, destination, sender meta) for each channel the practice's rules give."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    if delivery.fax:
        out.append((FAX, delivery.fax, {}))
    if delivery.email:
        out.append((EMAIL, delivery.email, {}))
    if delivery.webhook_url:
        out.append((WEBHOOK, delivery.webhook_url,
                    {"secret_env": delivery.webhook_secret_env or ""}))
    return out


async def make_report(db: Database, practice: Practice, night: date | NightWindow,
                      now: datetime, *, out_dir: Path, worker: str,
                      max_attempts: int | None = None, link_base: str = "") -> Made:
    """Make the night's report and its notes once, and enqueue their deliveries.

    `practice.delivery` says where they go (tests pass a practice whose delivery section
    names their own servers: dataclasses.replace). `night` is a date (the window comes
    from the schedule, the manual overrides and the previous report) or a NightWindow.
    """
    now = require_aware(now)
    window = await resolve_window(db, practice, night)
    if window is None:
        return Made(NO_NIGHT, practice.id, None)
    if window.opening > now:
        return Made(NOT_DUE, practice.id, window.night)
    report_id, status = await _claim(db, practice.id, window, now, worker)
    if report_id is None:
        return Made(status, practice.id, window.night)
    records = await calls_between(db, practice.id, window.covers_from, window.opening)
    report = build_report(practice, window, records, now)
    folder = out_dir / practice.id / window.night.isoformat()
    pdf, data, notes = await asyncio.to_thread(_write, folder, report, link_base)
    ids: list[str] = []
    try:
        ids = await _enqueue_and_mark(db, practice, report, report_id, worker, now, pdf,
                                      data, notes, max_attempts)
    except _LostClaim:
        # Our lease ran out and another controller took the night: it finishes the job.
        return Made(BUSY, practice.id, window.night)
    log.info("report %s night %s made: %d calls, %d need action, %d deliveries",
             practice.id, window.night, len(report.notes), len(report.needs_action), len(ids))
    return Made(MADE, practice.id, window.night, report_id, pdf, data, len(report.notes),
                len(report.needs_action), tuple(ids))


class _LostClaim(Exception):
    pass


async def _enqueue_and_mark(db: Database, practice: Practice, report: ReportDoc,
                            report_id: str, worker: str, now: datetime, pdf: Path, data: Path,
                            notes: dict[str, tuple[Path, Path]],
                            max_attempts: int | None) -> list[str]:
    """One transaction: every delivery enqueued and the report marked made, or nothing."""
    night = report.window.night
    title = f"{practice.name}: {report.title}"
    ids: list[str] = []
    async with db.session() as s:
        for channel, destination, meta in destinations(practice.delivery):
            if channel == EMAIL:
                meta = {**meta, "subject": title,
                        "filename": f"after-hours-report-{practice.id}-{night}.pdf"}
            try:
                ids.append(await outbox.enqueue(
                    s, practice_id=practice.id, channel=channel, destination=destination,
                    document_kind=KIND_REPORT, document_id=report.document_id,
                    pdf_path=pdf, json_path=data, meta=meta, now=now,
                    max_attempts=max_attempts))
            except ValueError as exc:  # the rules' checks should have caught it
                log.error("report %s night %s: %s delivery skipped: %s", practice.id, night,
                          channel, exc)
                continue
            if channel == WEBHOOK:
                for note in report.notes:
                    npdf, njson = notes[note.call_id]
                    ids.append(await outbox.enqueue(
                        s, practice_id=practice.id, channel=channel, destination=destination,
                        document_kind=KIND_NOTE, document_id=note.call_id, pdf_path=npdf,
                        json_path=njson, meta=meta, now=now, max_attempts=max_attempts))
        done = await s.execute(
            update(Report).where(Report.id == report_id, Report.claimed_by == worker,
                                 Report.status == REPORT_MAKING)
            .values(status=REPORT_MADE, made_at=now, call_count=len(report.notes),
                    needs_action=len(report.needs_action), pdf_path=str(pdf),
                    json_path=str(data), deliveries=json.dumps(ids))
            .execution_options(synchronize_session=False))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise _LostClaim  # rolls the enqueues back with it
    return ids


