"""Manual overrides ("closed now until ...", "open until ...") kept in the database.

They are set from the command line without editing the YAML, and the call flow passes
`active_overrides(...)` to `ivr.rules.schedule.state_at(..., manual_overrides=...)`,
where they win over everything in the rules. Validation is pure (`check_new`); the
async functions take a `Database` and the caller's clock, so tests pin the time.

Setting and clearing are changes to the schedule in force: given an `actor`, they add
their audit entry (ivr.records.audit) in the same transaction, so a change is never committed
without its entry, nor an entry without its change.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.db.engine import Database
from ivr.db.models import ManualOverride
from ivr.records import audit
from ivr.rules import Override, RuleSet
from ivr.rules.timeutil import fmt_local, require_aware

REASON_MAX = 200
MAX_DURATION = timedelta(days=90)  # longer is far more likely a typo in the year


class OverrideError(ValueError):
    """A manual override was refused; the message names the bad value and what is expected."""


@dataclass(frozen=True)
class NewOverride:
    """A validated override, ready to store."""

    practice_id: str
    is_open: bool
    start: datetime
    end: datetime
    reason: str


def check_new(rules: RuleSet, practice_id: str, is_open: bool, until: datetime, reason: str,
              now: datetime, start: datetime | None = None) -> NewOverride:
    """Validate an override against the rules in force; OverrideError says what is wrong."""
    now = require_aware(now, "now")
    if practice_id not in rules.practices:
        known = ", ".join(sorted(rules.practices)) or "none"
        raise OverrideError(f"unknown practice {practice_id!r}; known practices: {known}")
    tz = rules.practices[practice_id].tz
    start = now if start is None else require_aware(start, "start")
    end = require_aware(until, "until")
    if end <= now:
        raise OverrideError(f"--until {fmt_local(end, tz)} is not in the future "
                            f"(now is {fmt_local(now, tz)})")
    if end <= start:
        raise OverrideError(f"--until {fmt_local(end, tz)} must be after --from "
                            f"{fmt_local(start, tz)}")
    if end - start > MAX_DURATION:
        raise OverrideError(f"--until {fmt_local(end, tz)} is more than {MAX_DURATION.days} "
                            "days away; check the date, or put a long closure in the rules")
    text = reason.strip()
    if not text:
        raise OverrideError("--reason must not be empty (say why, e.g. 'staff meeting')")
    if len(text) > REASON_MAX:
        raise OverrideError(f"--reason is {len(text)} characters long; at most {REASON_MAX}")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise OverrideError("--reason must be one line of text without control characters")
    return NewOverride(practice_id, is_open, start, end, text)


async def set_override(db: Database, new: NewOverride, now: datetime,
                       actor: str | None = None) -> dict[str, Any]:
    """Store a validated override; it wins over earlier ones where they overlap.

    With an `actor`, an `override.set` audit entry is written in the same transaction
    (mode and times, not the reason: free text may name people).
    """
    row = ManualOverride(practice_id=new.practice_id, is_open=new.is_open, start=new.start,
                         end=new.end, reason=new.reason, created_at=require_aware(now, "now"))
    async with db.session() as session:
        session.add(row)
        await session.flush()
        doc = _row_json(row, now)
        if actor is not None:
            await _audit(session, actor, audit.OVERRIDE_SET, now, new.practice_id,
                         str(row.id), {"mode": doc["mode"], "start": doc["start"],
                                       "end": doc["end"]})
        return doc


async def clear_overrides(db: Database, practice_id: str, now: datetime,
                          actor: str | None = None) -> int:
    """Clear the practice's overrides that are in force or still to come; how many.

    With an `actor`, an `override.clear` audit entry (the ids cleared) is written in the
    same transaction, also when there was nothing to clear.
    """
    now = require_aware(now, "now")
    async with db.session() as session:
        rows = (await session.scalars(
            select(ManualOverride).where(ManualOverride.practice_id == practice_id,
                                         ManualOverride.cleared_at.is_(None),
                                         ManualOverride.end > now))).all()
        for row in rows:
            row.cleared_at = now
        if actor is not None:
            await _audit(session, actor, audit.OVERRIDE_CLEAR, now, practice_id, None,
                         {"cleared": len(rows), "ids": [row.id for row in rows][:50]})
        return len(rows)


async def _audit(session: AsyncSession, actor: str, action: str, now: datetime,
                 practice_id: str, subject: str | None, detail: dict[str, Any]) -> None:
    try:
        await audit.record(session, actor, action, at=now, practice_id=practice_id,
                           subject=subject, detail=detail)
    except Exception as exc:  # raised out of the session: the change is rolled back too
        raise audit.AuditError.of(exc, "the override was not changed") from exc


async def list_overrides(db: Database, now: datetime, practice_id: str | None = None,
                         include_past: bool = False) -> list[dict[str, Any]]:
    """Overrides in force or to come (all of them with include_past), oldest first."""
    now = require_aware(now, "now")
    query = select(ManualOverride).order_by(ManualOverride.created_at, ManualOverride.id)
    if practice_id is not None:
        query = query.where(ManualOverride.practice_id == practice_id)
    if not include_past:
        query = query.where(ManualOverride.cleared_at.is_(None), ManualOverride.end > now)
    async with db.session() as session:
        return [_row_json(row, now) for row in (await session.scalars(query)).all()]


async def active_overrides(db: Database, practice_id: str, instant: datetime
                           ) -> tuple[Override, ...]:
    """The practice's manual overrides not ended and not cleared at `instant`.

    Includes ones that start later, so `state_at` can tell when the state next changes.
    Ordered oldest first: `state_at` lets the last one win, i.e. the most recently set.
    Database errors propagate; the call flow decides what a call does without them.
    """
    t = require_aware(instant)
    query = (select(ManualOverride)
             .where(ManualOverride.practice_id == practice_id, ManualOverride.end > t,
                    or_(ManualOverride.cleared_at.is_(None), ManualOverride.cleared_at > t))
             .order_by(ManualOverride.created_at, ManualOverride.id))
    async with db.session() as session:
        rows = (await session.scalars(query)).all()
    return tuple(Override(start=r.start, end=r.end, is_open=r.is_open, reason=r.reason,
                          manual=True) for r in rows)


def _row_json(row: ManualOverride, now: datetime) -> dict[str, Any]:
    if row.cleared_at is not None:
        state = "cleared"
    elif row.end <= now:
        state = "expired"
    elif row.start > now:
        state = "scheduled"
    else:
        state = "active"
    return {
        "id": row.id,
        "practice_id": row.practice_id,
        "mode": "open" if row.is_open else "closed",
        "start": row.start.isoformat(),
        "end": row.end.isoformat(),
        "reason": row.reason,
        "state": state,
        "created_at": row.created_at.isoformat(),
        "cleared_at": row.cleared_at.isoformat() if row.cleared_at else None,
    }
