"""Retention: delete each practice's old recordings and call records, and log every run.

Days count from the start of the call; a call exactly N days old is due. Per practice
(the rules' `retention` section; calls to unknown numbers, or of a practice no longer in
the rules, get the defaults):
- after `recordings_days`: the call's recording files (intake name and reason, any other
  Recording row, the fallback message) are deleted, their paths cleared, the Recording
  rows deleted, the call stamped `recordings_purged_at` and its timeline given a
  `retention.recordings_purged` event (counts only).
- after `records_days`: the call goes with everything hanging off it (timeline, intake,
  transcripts (kept with the intake until then: the record, not the audio), recordings,
  call-back, clinician legs, its note files and note deliveries), and so do
  the files of morning reports whose opening is that old (the report row stays, paths
  cleared: it holds counts only and marks the night as made).
Never touched: a call in progress (not ended and started less than a day ago), a call
whose call-back is pending, a call whose note is still being delivered ("held").

The pure part (`plan`) takes the policy and the time as arguments. `purge` does the I/O,
one transaction per call (see "deleting" below), so two controllers purging at once only
find less to do. Files are deleted only inside the data folder: a call with a file
elsewhere keeps everything, and every run warns with its call id until someone looks.
Each run writes one `retention_log` row per practice (counts and ids, never patient
data) and logs one INFO line per practice; its caller adds one `retention.run` entry to
the audit log (`Summary.audit_detail`).

Never touched either: the audit log (`audit_log`, ivr.records.audit). It must be kept at least
6 years (docs/security.md), longer than any `records_days` may be (3650 days is allowed,
but the audit log must not depend on that), so this module never reads, updates or
deletes it, and nothing else purges it: its entries name calls by id only and outlive
the records they name.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.db.claims import lock_or_skip
from ivr.db.engine import Database
from ivr.db.models import (
    CB_PENDING,
    Call,
    CallEvent,
    IntakeField,
    OncallCallback,
    OncallLeg,
    Recording,
    Report,
    RetentionLog,
    Transcript,
)
from ivr.delivery.models import PENDING, SENDING, Delivery, DeliveryAttempt
from ivr.delivery.outbox import default_worker_id
from ivr.documents.store import KIND_NOTE
from ivr.rules import RuleSet
from ivr.rules.model import Retention
from ivr.rules.timeutil import require_aware

log = logging.getLogger(__name__)

DEFAULT = Retention()
# A call not ended yet may still be running (or its hang-up not reconciled yet); after a
# day it is a lost record and ages like any other.
IN_PROGRESS_WINDOW = timedelta(days=1)


# --- the pure part -----------------------------------------------------------------------

@dataclass(frozen=True)
class CallAge:
    """What the plan needs to know of one call."""

    call_id: str
    started_at: datetime
    ended_at: datetime | None = None
    recordings_left: bool = True  # False once purged (and no fallback message came since)
    held: bool = False  # a pending call-back, or its note still being delivered


@dataclass(frozen=True)
class Plan:
    recordings: tuple[str, ...] = ()  # calls whose recordings go now
    records: tuple[str, ...] = ()  # calls deleted whole now
    held: tuple[str, ...] = ()  # due, but in progress or held: kept this time


def policy_for(rules: RuleSet, practice_id: str | None) -> Retention:
    """The practice's retention; the defaults for unknown numbers and unknown practices."""
    practice = rules.practices.get(practice_id) if practice_id else None
    return practice.retention if practice is not None else DEFAULT


def recordings_cutoff(retention: Retention, now: datetime) -> datetime:
    """Calls started at or before this instant have their recordings due."""
    return require_aware(now, "now") - timedelta(days=retention.recordings_days)


def records_cutoff(retention: Retention, now: datetime) -> datetime | None:
    """Calls started at or before this instant are deleted whole; None: records kept."""
    if retention.records_days is None:
        return None
    return require_aware(now, "now") - timedelta(days=retention.records_days)


def in_progress(call: CallAge, now: datetime) -> bool:
    return call.ended_at is None and call.started_at > now - IN_PROGRESS_WINDOW


def plan(retention: Retention, now: datetime, calls: Iterable[CallAge]) -> Plan:
    """Which of these calls lose their recordings, which go whole, which are held."""
    recordings_cut = recordings_cutoff(retention, now)
    records_cut = records_cutoff(retention, now)
    recordings: list[str] = []
    records: list[str] = []
    held: list[str] = []
    for call in calls:
        record_due = records_cut is not None and call.started_at <= records_cut
        recordings_due = call.recordings_left and call.started_at <= recordings_cut
        if not (record_due or recordings_due):
            continue
        if call.held or in_progress(call, now):
            held.append(call.call_id)
        elif record_due:
            records.append(call.call_id)
        else:
            recordings.append(call.call_id)
    return Plan(tuple(recordings), tuple(records), tuple(held))


# --- results -----------------------------------------------------------------------------

@dataclass
class Counts:
    """One practice's part of a run (what retention_log stores)."""

    practice_id: str | None
    recordings_days: int
    records_days: int | None
    calls_purged: int = 0  # calls whose recordings went (none left)
    recordings_deleted: int = 0  # recording files
    calls_deleted: int = 0  # whole records
    documents_deleted: int = 0  # note and morning report files
    bytes_freed: int = 0
    files_refused: int = 0  # outside the data folder, or could not be deleted
    calls_held: int = 0  # due but kept: in progress, pending call-back or delivery

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Summary:
    run_id: str
    at: datetime
    worker: str
    dry_run: bool
    practices: tuple[Counts, ...]

    def totals(self) -> dict[str, int]:
        return {k: sum(getattr(c, k) for c in self.practices) for k in (
            "calls_purged", "recordings_deleted", "calls_deleted", "documents_deleted",
            "bytes_freed", "files_refused", "calls_held")}

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "at": self.at.isoformat(), "worker": self.worker,
                "dry_run": self.dry_run, "practices": [c.to_json() for c in self.practices],
                "totals": self.totals()}

    def audit_detail(self) -> dict[str, Any]:
        """The run's `retention.run` audit entry: counts only (subject: the run id)."""
        return {"dry_run": self.dry_run, "practices": len(self.practices), **self.totals()}


# --- files -------------------------------------------------------------------------------

@dataclass
class _Files:
    deleted: int = 0
    bytes: int = 0
    refused: int = 0


class _Refused(Exception):
    """A file of the call stays (outside the data folder, or undeletable): so does its row."""

    def __init__(self, files: _Files) -> None:
        super().__init__(files.refused)
        self.files = files


def _inside(raw: str, root: Path) -> Path | None:
    target = Path(raw).resolve()  # a symlink or '..' pointing out of the folder is outside
    return target if target.is_relative_to(root) else None


def _outside(paths: Iterable[str], root: Path, owner: str, kind: str) -> int:
    """How many of the paths lie outside the data folder; each one warned about.

    `owner` ("call <id>") names whose file it is; the path itself is never logged."""
    count = 0
    for raw in paths:
        if _inside(raw, root) is None:
            log.warning("%s: retention refused a %s file outside the data folder", owner,
                        kind)
            count += 1
    return count


def _delete_files(paths: Iterable[str], root: Path, dry_run: bool, owner: str,
                  kind: str) -> _Files:
    """Delete (or, dry, just measure) the files inside `root`; run in a thread."""
    out = _Files()
    for raw in dict.fromkeys(paths):  # once each, in order
        target = _inside(raw, root)
        if target is None:
            out.refused += _outside([raw], root, owner, kind)
            continue
        try:
            size = target.stat().st_size
            if not dry_run:
                target.unlink()
        except FileNotFoundError:
            continue  # gone already (another purge, or never written)
        except OSError as exc:
            log.warning("%s: retention could not delete a %s file (%s)", owner, kind,
                        type(exc).__name__)
            out.refused += 1
            continue
        out.deleted += 1
        out.bytes += size
        if not dry_run and len(target.parent.relative_to(root).parts) >= 2:
            try:  # recordings/<call>/ or documents/.../notes/ once empty
                target.parent.rmdir()
            except OSError:
                pass
    return out


def _files_in(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []


# --- reading -----------------------------------------------------------------------------

def _held_clause() -> ColumnElement[bool]:
    """A pending call-back, or the call's note not yet delivered, keeps the call."""
    callback = exists().where(OncallCallback.call_id == Call.id,
                              OncallCallback.status == CB_PENDING)
    note = exists().where(Delivery.document_kind == KIND_NOTE, Delivery.document_id == Call.id,
                          Delivery.status.in_((PENDING, SENDING)))
    return or_(callback, note)


def _recordings_left() -> ColumnElement[bool]:
    """Not purged yet, or a fallback message folded in since (a late reconcile)."""
    return or_(Call.recordings_purged_at.is_(None), Call.fallback_recording.is_not(None))


def _practice_clause(practice_id: str | None) -> ColumnElement[bool]:
    if practice_id is None:
        return Call.practice_id.is_(None)
    return Call.practice_id == practice_id


async def _groups(db: Database, rules: RuleSet) -> list[str | None]:
    """Every practice in the rules, then those only the calls name, then unknown numbers."""
    async with db.session() as s:
        stored = set((await s.scalars(select(Call.practice_id).distinct())).all())
    known = sorted(rules.practices)
    others = sorted(p for p in stored if p is not None and p not in rules.practices)
    return [*known, *others, None]


async def _candidates(db: Database, practice_id: str | None, retention: Retention,
                      now: datetime) -> list[CallAge]:
    recordings_cut = recordings_cutoff(retention, now)
    records_cut = records_cutoff(retention, now)
    latest = max(recordings_cut, records_cut) if records_cut is not None else recordings_cut
    due = _recordings_left() if records_cut is None else or_(
        _recordings_left(), Call.started_at <= records_cut)
    query = (select(Call.id, Call.started_at, Call.ended_at, Call.recordings_purged_at,
                    Call.fallback_recording, _held_clause().label("held"))
             .where(_practice_clause(practice_id), Call.started_at <= latest, due)
             .order_by(Call.started_at, Call.id))
    async with db.session() as s:
        rows = (await s.execute(query)).all()
    return [CallAge(r.id, r.started_at, r.ended_at,
                    r.recordings_purged_at is None or r.fallback_recording is not None,
                    bool(r.held)) for r in rows]


async def _recording_paths(s: AsyncSession, call_id: str) -> list[str]:
    paths = list((await s.scalars(select(Recording.path).where(
        Recording.call_id == call_id).order_by(Recording.id))).all())
    paths += [p for p in (await s.scalars(select(IntakeField.recording_path).where(
        IntakeField.call_id == call_id, IntakeField.recording_path.is_not(None)))).all() if p]
    fallback = await s.scalar(select(Call.fallback_recording).where(Call.id == call_id))
    return list(dict.fromkeys([*paths, *([fallback] if fallback else [])]))


async def _note_paths(s: AsyncSession, call_id: str) -> list[str]:
    """The call's note files: named by its note deliveries, and in its night's report."""
    paths: list[str] = []
    for pdf, data in (await s.execute(select(Delivery.pdf_path, Delivery.json_path).where(
            Delivery.document_kind == KIND_NOTE, Delivery.document_id == call_id))).all():
        paths += [p for p in (pdf, data) if p]
    call = (await s.execute(select(Call.practice_id, Call.started_at).where(
        Call.id == call_id))).first()
    if call is not None and call.practice_id is not None:
        folders = (await s.scalars(select(Report.pdf_path).where(
            Report.practice_id == call.practice_id, Report.covers_from <= call.started_at,
            Report.opening > call.started_at, Report.pdf_path.is_not(None)))).all()
        for pdf in (p for p in folders if p):  # store.make_report: notes/<call id>.pdf|.json
            notes = Path(pdf).parent / "notes"
            paths += [str(notes / f"{call_id}.pdf"), str(notes / f"{call_id}.json")]
    return list(dict.fromkeys(paths))


# --- deleting ----------------------------------------------------------------------------
# One transaction per call. Its first statement is a write that re-checks the call (still
# there, not held, still due): from then on the call is ours (SQLite: the write lock;
# PostgreSQL: the row lock, taken with SKIP LOCKED first so a purge on another node passes
# over a call being purged instead of waiting for it), and a concurrent purge finds it
# gone or done. The paths are
# read and the files deleted inside it, the rows last: a failed commit leaves rows whose
# files are gone, which the next run finishes; never files without a row to find them.

async def _claimed(s: AsyncSession, call_id: str, now: datetime,
                   *more: ColumnElement[bool]) -> bool:
    if not await lock_or_skip(s, Call.id, Call.id == call_id):
        return False  # another purge holds it
    done = await s.execute(
        update(Call).where(Call.id == call_id, ~_held_clause(), *more)
        .values(recordings_purged_at=func.coalesce(Call.recordings_purged_at, now))
        .execution_options(synchronize_session=False))
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


async def _purge_recordings(db: Database, call_id: str, root: Path, now: datetime,
                            dry_run: bool, counts: Counts) -> None:
    owner = f"call {call_id}"
    if dry_run:
        async with db.session() as s:
            paths = await _recording_paths(s, call_id)
        files = await asyncio.to_thread(_delete_files, paths, root, True, owner, "recording")
        counts.calls_purged += 0 if files.refused else 1
        _add(counts, files)
        return
    try:
        async with db.session() as s:
            if not await _claimed(s, call_id, now, _recordings_left()):
                return  # deleted or purged by another run meanwhile
            paths = await _recording_paths(s, call_id)
            files = await _delete_or_refuse(paths, root, owner, "recording")
            await s.execute(update(Call).where(Call.id == call_id)
                            .values(recordings_purged_at=now, fallback_recording=None)
                            .execution_options(synchronize_session=False))
            await s.execute(delete(Recording).where(Recording.call_id == call_id)
                            .execution_options(synchronize_session=False))
            await s.execute(update(IntakeField).where(IntakeField.call_id == call_id)
                            .values(recording_path=None)
                            .execution_options(synchronize_session=False))
            s.add(CallEvent(call_id=call_id, at=now, kind="retention.recordings_purged",
                            detail=json.dumps({"files": files.deleted,
                                               "bytes": files.bytes})))
    except _Refused as refused:
        _add(counts, refused.files)  # every run warns again until someone moves it
        return
    _add(counts, files)
    counts.calls_purged += 1


async def _delete_record(db: Database, call_id: str, root: Path, now: datetime,
                         dry_run: bool, counts: Counts) -> None:
    owner = f"call {call_id}"
    if dry_run:
        async with db.session() as s:
            recordings, notes = await _recording_paths(s, call_id), await _note_paths(s, call_id)
        rec = await asyncio.to_thread(_delete_files, recordings, root, True, owner, "recording")
        doc = await asyncio.to_thread(_delete_files, notes, root, True, owner, "note")
        _add(counts, rec)
        _add(counts, doc, documents=True)
        counts.calls_deleted += 0 if rec.refused or doc.refused else 1
        return
    try:
        async with db.session() as s:
            if not await _claimed(s, call_id, now):
                return
            recordings, notes = await _recording_paths(s, call_id), await _note_paths(s, call_id)
            outside = _outside(notes, root, owner, "note")  # all checked before any goes
            if outside:
                raise _Refused(_Files(refused=outside))
            rec = await _delete_or_refuse(recordings, root, owner, "recording")
            doc = await _delete_or_refuse(notes, root, owner, "note")
            # Children first, explicitly: no orphan even where foreign keys are not enforced.
            deliveries = select(Delivery.id).where(Delivery.document_kind == KIND_NOTE,
                                                   Delivery.document_id == call_id)
            for stmt in (
                    delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(deliveries)),
                    delete(Delivery).where(Delivery.document_kind == KIND_NOTE,
                                           Delivery.document_id == call_id),
                    delete(OncallLeg).where(OncallLeg.call_id == call_id),
                    delete(OncallCallback).where(OncallCallback.call_id == call_id),
                    delete(CallEvent).where(CallEvent.call_id == call_id),
                    delete(IntakeField).where(IntakeField.call_id == call_id),
                    delete(Transcript).where(Transcript.call_id == call_id),
                    delete(Recording).where(Recording.call_id == call_id),
                    delete(Call).where(Call.id == call_id)):
                await s.execute(stmt.execution_options(synchronize_session=False))
    except _Refused as refused:
        _add(counts, refused.files)
        return
    _add(counts, rec)
    _add(counts, doc, documents=True)
    counts.calls_deleted += 1


async def _delete_or_refuse(paths: list[str], root: Path, owner: str, kind: str) -> _Files:
    """Delete the files, or raise _Refused (rolling the transaction back) if one stays."""
    outside = _outside(paths, root, owner, kind)
    if outside:  # checked before any file goes
        raise _Refused(_Files(refused=outside))
    files = await asyncio.to_thread(_delete_files, paths, root, False, owner, kind)
    if files.refused:
        raise _Refused(files)
    return files


def _add(counts: Counts, files: _Files, documents: bool = False) -> None:
    if documents:
        counts.documents_deleted += files.deleted
    else:
        counts.recordings_deleted += files.deleted
    counts.bytes_freed += files.bytes
    counts.files_refused += files.refused


async def _delete_reports(db: Database, practice_id: str, cutoff: datetime, root: Path,
                          dry_run: bool, counts: Counts) -> None:
    """The files of the practice's morning reports whose opening is past records_days."""
    async with db.session() as s:
        rows = (await s.execute(select(Report.id, Report.pdf_path, Report.json_path).where(
            Report.practice_id == practice_id, Report.opening <= cutoff,
            or_(Report.pdf_path.is_not(None), Report.json_path.is_not(None))))).all()
    for report_id, pdf, data in rows:
        paths = [p for p in (pdf, data) if p]
        if not paths:
            continue
        paths += await asyncio.to_thread(_files_in, Path(paths[0]).parent / "notes")
        files = await asyncio.to_thread(_delete_files, paths, root, dry_run,
                                        f"report {report_id}", "report")
        _add(counts, files, documents=True)
        if dry_run or files.refused:
            continue
        async with db.session() as s:
            await s.execute(update(Report).where(Report.id == report_id)
                            .values(pdf_path=None, json_path=None)
                            .execution_options(synchronize_session=False))


# --- one run -----------------------------------------------------------------------------

async def purge(db: Database, rules: RuleSet, now: datetime, data_dir: Path,
                dry_run: bool = False, *, worker: str | None = None) -> Summary:
    """Apply every practice's retention once; a dry run deletes nothing but logs its row."""
    now = require_aware(now, "now")
    root = data_dir.resolve()
    run_id, worker = secrets.token_hex(16), (worker or default_worker_id())[:64]
    done: list[Counts] = []
    for practice_id in await _groups(db, rules):
        retention = policy_for(rules, practice_id)
        counts = Counts(practice_id, retention.recordings_days, retention.records_days)
        done.append(counts)
        try:
            await _purge_practice(db, practice_id, retention, now, root, dry_run, counts)
        finally:
            # Also when cut short (database gone, disk error): what went is logged. Quiet
            # runs are logged too: the log shows the policy was enforced every hour.
            await _write_log(db, run_id, now, worker, dry_run, counts)
            _log_counts(counts, dry_run)
    return Summary(run_id, now, worker, dry_run, tuple(done))


async def _purge_practice(db: Database, practice_id: str | None, retention: Retention,
                          now: datetime, root: Path, dry_run: bool, counts: Counts) -> None:
    todo = plan(retention, now, await _candidates(db, practice_id, retention, now))
    counts.calls_held = len(todo.held)
    for call_id in todo.recordings:
        await _purge_recordings(db, call_id, root, now, dry_run, counts)
    for call_id in todo.records:
        await _delete_record(db, call_id, root, now, dry_run, counts)
    records_cut = records_cutoff(retention, now)
    if practice_id is not None and records_cut is not None:
        await _delete_reports(db, practice_id, records_cut, root, dry_run, counts)


async def _write_log(db: Database, run_id: str, at: datetime, worker: str, dry_run: bool,
                     c: Counts) -> None:
    async with db.session() as s:
        s.add(RetentionLog(
            run_id=run_id, at=at, worker=worker, practice_id=c.practice_id,
            recordings_days=c.recordings_days, records_days=c.records_days,
            dry_run=dry_run, calls_purged=c.calls_purged,
            recordings_deleted=c.recordings_deleted, calls_deleted=c.calls_deleted,
            documents_deleted=c.documents_deleted, bytes_freed=c.bytes_freed,
            files_refused=c.files_refused, calls_held=c.calls_held))


def _log_counts(c: Counts, dry_run: bool) -> None:
    log.info("retention %s%s: %d recording file(s) from %d call(s), %d call record(s), "
             "%d document file(s), %d bytes%s; %d held, %d refused",
             c.practice_id or "(unknown numbers)", " DRY RUN" if dry_run else "",
             c.recordings_deleted, c.calls_purged, c.calls_deleted, c.documents_deleted,
             c.bytes_freed, " would go" if dry_run else " deleted", c.calls_held,
             c.files_refused)


# --- the log -----------------------------------------------------------------------------

async def log_rows(db: Database, practice_id: str | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
    """retention_log rows, newest first."""
    query = select(RetentionLog).order_by(RetentionLog.at.desc(), RetentionLog.id.desc())
    if practice_id:
        query = query.where(RetentionLog.practice_id == practice_id)
    async with db.session() as s:
        rows = (await s.scalars(query.limit(limit))).all()
    return [_log_json(r) for r in rows]


def _log_json(r: RetentionLog) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r.id, "run_id": r.run_id, "at": r.at.isoformat(),
                           "worker": r.worker, "practice_id": r.practice_id}
    for name in ("recordings_days", "records_days", "dry_run", "calls_purged",
                 "recordings_deleted", "calls_deleted", "documents_deleted", "bytes_freed",
                 "files_refused", "calls_held"):
        out[name] = getattr(r, name)
    return out

