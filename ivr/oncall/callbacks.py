"""Call-backs until acknowledged, in the database: create, claim an attempt, acknowledge, read.

Claiming is the one step that must never happen twice: `claim_attempt` moves a pending
call-back's attempt counter forward with a compare-and-set on the old value and inserts
the attempt's leg row (unique per call-back and attempt number) in the same commit, so
two loops, two controllers or a restarted one can never place the same attempt twice. On
PostgreSQL the call-back's row is locked first (ivr.db.claims: SKIP LOCKED), so a node
passes over a call-back another node is claiming at that moment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ivr import clock
from ivr.db.claims import lock_or_skip
from ivr.db.engine import Database
from ivr.db.models import (
    CB_ACKNOWLEDGED,
    CB_NOT_ACKNOWLEDGED,
    CB_PENDING,
    LEG_CALLBACK,
    LEG_PLACING,
    OUTCOME_ACKNOWLEDGED,
    OUTCOME_NOT_ACKNOWLEDGED,
    OUTCOME_PENDING,
    Call,
    CallEvent,
    IntakeField,
    OncallCallback,
    OncallLeg,
)
from ivr.rules.model import Practice
from ivr.rules.oncall import DialStep, callback_chain, max_attempts, step_for


def promised_by(practice: Practice, instant: datetime) -> datetime:
    """When the caller is told to expect a call: one round of re-notifications, + 15 min."""
    we = practice.on_call.when_exhausted
    chain = max(1, len(callback_chain(practice, instant)))
    rounds = min(chain * we.attempts_per_person, max_attempts(practice, instant))
    return instant + timedelta(minutes=we.renotify_minutes * rounds + 15)


async def create(db: Database, *, callback_id: str, call_id: str, practice: Practice,
                 now: datetime, first_at: datetime, interval_seconds: float,
                 promised: datetime | None) -> bool:
    """A pending call-back for the call (one per call); False if it already had one."""
    try:
        async with db.session() as s:
            s.add(OncallCallback(id=callback_id, call_id=call_id, practice_id=practice.id,
                                 status=CB_PENDING, created_at=now, next_attempt_at=first_at,
                                 attempts=0, max_attempts=max_attempts(practice, now),
                                 interval_seconds=interval_seconds, promised_by=promised))
            call = await s.get(Call, call_id)
            if call is not None:
                call.oncall_outcome = OUTCOME_PENDING
            s.add(CallEvent(call_id=call_id, at=now, kind="callback.created",
                            detail=json.dumps({"callback": callback_id})))
    except IntegrityError:
        return False
    return True


@dataclass(frozen=True)
class Claimed:
    """One attempt this process now owns: its leg row is committed as `placing`."""

    callback_id: str
    call_id: str
    practice_id: str
    attempt_no: int
    leg_id: str
    step: DialStep


async def due(db: Database, now: datetime, limit: int = 20) -> list[OncallCallback]:
    async with db.session() as s:
        return list((await s.scalars(
            select(OncallCallback).where(OncallCallback.status == CB_PENDING,
                                         OncallCallback.next_attempt_at <= now)
            .order_by(OncallCallback.next_attempt_at).limit(limit))).all())


async def claim_attempt(db: Database, cb: OncallCallback, practice: Practice,
                        now: datetime, leg_id: str, channel_id: str) -> Claimed | None:
    """Take the next attempt of `cb` (as read) or return None if someone else did."""
    chain = callback_chain(practice, now)
    attempt_no = cb.attempts + 1
    try:
        async with db.session() as s:
            if not await lock_or_skip(s, OncallCallback.id, OncallCallback.id == cb.id,
                                      OncallCallback.status == CB_PENDING,
                                      OncallCallback.attempts == cb.attempts):
                return None  # another node is claiming it, or has claimed it
            moved = await s.execute(
                update(OncallCallback)
                .where(OncallCallback.id == cb.id, OncallCallback.status == CB_PENDING,
                       OncallCallback.attempts == cb.attempts)
                .values(attempts=attempt_no,
                        next_attempt_at=now + timedelta(seconds=cb.interval_seconds)))
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                return None
            if attempt_no > cb.max_attempts or not chain:
                await s.execute(update(OncallCallback).where(OncallCallback.id == cb.id)
                                .values(status=CB_NOT_ACKNOWLEDGED))
                call = await s.get(Call, cb.call_id)
                if call is not None:
                    call.oncall_outcome = OUTCOME_NOT_ACKNOWLEDGED
                s.add(CallEvent(call_id=cb.call_id, at=now, kind="callback.gave_up",
                                detail=json.dumps({"attempts": cb.attempts})))
                return None
            step = step_for(chain, attempt_no,
                            practice.on_call.when_exhausted.attempts_per_person)
            s.add(OncallLeg(id=leg_id, call_id=cb.call_id, callback_id=cb.id,
                            attempt_no=attempt_no, kind=LEG_CALLBACK,
                            practice_id=practice.id, clinician_id=step.clinician_id,
                            role=step.role, number=step.number, step_index=step.step_index,
                            channel_id=channel_id, status=LEG_PLACING, placed_at=now))
            s.add(CallEvent(call_id=cb.call_id, at=now, kind="callback.attempt",
                            detail=json.dumps({"attempt": attempt_no,
                                               "clinician": step.clinician_id})))
    except IntegrityError:
        return None  # the (callback, attempt) row exists: that attempt was placed already
    return Claimed(cb.id, cb.call_id, cb.practice_id, attempt_no, leg_id, step)


async def acknowledge(db: Database, callback_id: str, *, clinician_id: str | None,
                      via: str, now: datetime) -> bool:
    """Mark acknowledged; True only for the one acknowledgement that won."""
    async with db.session() as s:
        cb = await s.get(OncallCallback, callback_id)
        if cb is None:
            return False
        moved = await s.execute(
            update(OncallCallback)
            .where(OncallCallback.id == callback_id, OncallCallback.status == CB_PENDING)
            .values(status=CB_ACKNOWLEDGED, acknowledged_at=now,
                    acknowledged_by=clinician_id, acknowledged_via=via))
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return False
        call = await s.get(Call, cb.call_id)
        if call is not None:
            call.oncall_outcome = OUTCOME_ACKNOWLEDGED
            call.oncall_clinician = clinician_id
        minutes = round((now - cb.created_at).total_seconds() / 60, 2)
        s.add(CallEvent(call_id=cb.call_id, at=now, kind="callback.acknowledged",
                        detail=json.dumps({"clinician": clinician_id, "via": via,
                                           "after_minutes": minutes})))
    return True


async def for_call(db: Database, call_id: str) -> OncallCallback | None:
    async with db.session() as s:
        return await s.scalar(select(OncallCallback).where(OncallCallback.call_id == call_id))


async def get(db: Database, callback_id: str) -> OncallCallback | None:
    async with db.session() as s:
        return await s.get(OncallCallback, callback_id)


async def pending_for_practices(db: Database, practice_ids: list[str]) -> list[OncallCallback]:
    async with db.session() as s:
        return list((await s.scalars(
            select(OncallCallback).where(OncallCallback.status == CB_PENDING,
                                         OncallCallback.practice_id.in_(practice_ids))
            .order_by(OncallCallback.created_at))).all())


async def pending_messages(db: Database,
                           practice_id: str) -> list[tuple[OncallCallback, datetime]]:
    """The practice's pending call-backs, oldest first, each with when its call came in."""
    async with db.session() as s:
        rows = (await s.execute(
            select(OncallCallback, Call.started_at)
            .join(Call, Call.id == OncallCallback.call_id)
            .where(OncallCallback.status == CB_PENDING,
                   OncallCallback.practice_id == practice_id)
            .order_by(Call.started_at, OncallCallback.created_at))).all()
        return [(cb, started) for cb, started in rows]


async def intake_of(db: Database, call_id: str) -> dict[str, IntakeField]:
    async with db.session() as s:
        rows = (await s.scalars(select(IntakeField).where(IntakeField.call_id == call_id))).all()
        return {r.field: r for r in rows}


# --- reading (the command line) ---------------------------------------------------------

def leg_json(row: OncallLeg) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "callback_id": row.callback_id,
            "attempt_no": row.attempt_no, "clinician_id": row.clinician_id,
            "role": row.role, "number": row.number, "step_index": row.step_index,
            "status": row.status, "detail": row.detail, "channel": row.channel,
            "placed_at": clock.iso(row.placed_at), "answered_at": clock.iso(row.answered_at),
            "ended_at": clock.iso(row.ended_at), "ring_ms": row.ring_ms,
            "bridged_at": clock.iso(row.bridged_at), "bridge_seconds": row.bridge_seconds}


def callback_json(row: OncallCallback) -> dict[str, Any]:
    return {"id": row.id, "call_id": row.call_id, "practice_id": row.practice_id,
            "status": row.status, "created_at": clock.iso(row.created_at),
            "next_attempt_at": clock.iso(row.next_attempt_at), "attempts": row.attempts,
            "max_attempts": row.max_attempts, "interval_seconds": row.interval_seconds,
            "promised_by": clock.iso(row.promised_by),
            "acknowledged_at": clock.iso(row.acknowledged_at),
            "acknowledged_by": row.acknowledged_by, "acknowledged_via": row.acknowledged_via}


async def legs_of_call(db: Database, call_id: str) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = (await s.scalars(select(OncallLeg).where(OncallLeg.call_id == call_id)
                                .order_by(OncallLeg.placed_at))).all()
        return [leg_json(r) for r in rows]


async def list_callbacks(db: Database, *, all_states: bool = False,
                         limit: int = 200) -> list[dict[str, Any]]:
    async with db.session() as s:
        query = select(OncallCallback).order_by(OncallCallback.created_at.desc()).limit(limit)
        if not all_states:
            query = query.where(OncallCallback.status == CB_PENDING)
        return [callback_json(r) for r in (await s.scalars(query)).all()]
