"""The calls a person may see, as notes: queried by practice, night and disposition.

Outcome and "needs action" are worked out per call by ivr.documents.note (they depend on
the call's legs and call-back), so those two filters run over at most SCAN calls after the
query; the page says so when it stopped there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select

from ivr.db.engine import Database
from ivr.db.models import Call
from ivr.documents.note import Note, build_note
from ivr.records import calls
from ivr.rules.model import Practice

SCAN = 500  # calls read at most for one list when the outcome filters are used


@dataclass(frozen=True)
class Filters:
    practice: str | None = None
    night: date | None = None  # the evening the night starts, in the practice's calendar
    disposition: str | None = None
    outcome: str | None = None
    needs_action: bool = False
    in_progress: bool = False
    since: datetime | None = None
    limit: int = 50
    offset: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"practice": self.practice, "night": self.night.isoformat() if self.night
                else None, "disposition": self.disposition, "outcome": self.outcome,
                "needs_action": self.needs_action, "limit": self.limit,
                "offset": self.offset}


def night_bounds(night: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Noon of that day to noon of the next, in the practice's zone: a whole night
    whatever its opening hours (the morning report's own window is on its page)."""
    start = datetime.combine(night, time(12), tz)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def _where(scope: list[str] | None, f: Filters, practices: dict[str, Practice]) -> list[Any]:
    where: list[Any] = []
    if scope is not None:
        where.append(Call.practice_id.in_(scope))
    if f.disposition:
        where.append(Call.disposition == f.disposition)
    if f.in_progress:
        where.append(Call.ended_at.is_(None))
    if f.since is not None:
        where.append(Call.started_at >= f.since)
    if f.night is not None:
        # Each practice's night in its own zone; calls of no practice by UTC.
        ids = scope if scope is not None else [*practices, None]
        spans = []
        for pid in ids:
            tz = practices[pid].tz if pid in practices else ZoneInfo("UTC")
            start, end = night_bounds(f.night, tz)
            same = Call.practice_id.is_(None) if pid is None else Call.practice_id == pid
            spans.append(and_(same, Call.started_at >= start, Call.started_at < end))
        where.append(or_(*spans) if spans else Call.id.is_(None))
    return where


async def call_notes(db: Database, scope: list[str] | None, f: Filters,
                     practices: dict[str, Practice]) -> tuple[list[tuple[dict[str, Any], Note]],
                                                              bool]:
    """(record, note) of the matching calls, newest first, and whether there are more."""
    post = bool(f.outcome or f.needs_action)
    query = select(Call.id).where(*_where(scope, f, practices)) \
        .order_by(Call.started_at.desc(), Call.id)
    if post:
        query = query.limit(SCAN)
    else:
        query = query.offset(f.offset).limit(f.limit + 1)
    async with db.session() as s:
        ids = list((await s.scalars(query)).all())
    out: list[tuple[dict[str, Any], Note]] = []
    skipped = 0
    for ident in ids:
        record = await calls.show_call(db, ident)
        if record is None:
            continue
        note = build_note(record, practices.get(record.get("practice_id") or ""))
        if post:
            if f.outcome and note.outcome != f.outcome:
                continue
            if f.needs_action and not note.needs_action:
                continue
            if skipped < f.offset:
                skipped += 1
                continue
        out.append((record, note))
        if len(out) > f.limit:
            break
    more = len(out) > f.limit
    return out[:f.limit], more


def row(record: dict[str, Any], note: Note) -> dict[str, Any]:
    """One call in a list: enough to find it again, the facts that decide what to do."""
    return {"id": note.call_id, "practice_id": note.practice_id,
            "practice": note.practice_name, "started_at": note.started_at,
            "started_local": note.local_start, "in_progress": note.ended_at is None,
            "route": note.route, "route_label": note.route_label,
            "disposition": note.disposition, "callback_number": note.callback_number,
            "outcome": note.outcome, "outcome_text": note.outcome_text,
            "needs_action": list(note.needs_action),
            "needs_action_rank": note.needs_action_rank,
            "recordings": len(note.recordings)}
