"""The call record: create, step, finish, reconcile and read calls (each step committed
before it returns: ivr.records.journal)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import selectinload

from ivr import clock, contract, ids
from ivr.db.engine import Database
from ivr.db.models import (
    CALLER_INDEX,
    END_CALLER_HANGUP,
    END_COMPLETED,
    END_FALLBACK_ABANDONED,
    END_FALLBACK_ANSWERED,
    END_FALLBACK_RECORDED,
    END_PBX_FAILURE,
    END_PBX_RESTART,
    LEG_ACCEPTED,
    LEG_LIVE,
    Call,
    CallEvent,
    IntakeField,
    OncallLeg,
    Recording,
    Transcript,
)
from ivr.db.sealed import lookup_indexes, sealed_values
from ivr.records import journal
from ivr.records.stamps import Stamp
from ivr.texts.en import TRANSCRIPT_MARK

now = clock.now  # the records' clock (tests read it here)
new_call_id = ids.new_id


class DuplicateCallStart(Exception):
    """A call start named a uniqueid that already has a record on this node.

    Asterisk gives every channel a new uniqueid and the dialplan tries a backup
    controller only when none was reachable, so a real call never starts twice: a second
    start is an attempt to attach to another patient's record and is refused.
    """

    def __init__(self, uniqueid: str, existing_call_id: str) -> None:
        super().__init__(f"uniqueid {uniqueid} already belongs to call {existing_call_id}")
        self.uniqueid = uniqueid
        self.existing_call_id = existing_call_id


async def start_call(db: Database, *, uniqueid: str, node: str, dialled: str,
                     forwarded_from: str, caller: str, started_at: datetime) -> str:
    """Create the call the moment the controller sees it; return its id.

    Only ever creates: a uniqueid that already has a record raises DuplicateCallStart
    and leaves that record untouched.
    """
    call_id = new_call_id()
    row = sealed_values(Call, {
        "id": call_id, "uniqueid": uniqueid, "node": node, "dialled": dialled,
        "forwarded_from": forwarded_from, "caller": caller, "started_at": started_at,
        "seen_by_controller": True})
    async with db.write() as conn:
        existing = await conn.scalar(_CALL_OF_UNIQUEID, {"b_node": node, "b_uid": uniqueid})
        if existing is not None:
            raise DuplicateCallStart(uniqueid, existing)
        await conn.execute(_ADD_CALL, row)
        await conn.execute(_ADD_EVENT, _event(call_id, "call.started", started_at, {}))
    return call_id


# The call's own steps are written with Core statements on one connection (Database.write,
# several calls' steps in one commit: journal.write), at a fraction of the ORM's cost. The
# statements are built once here with named parameters (b_*: the WHERE's, the rest name
# columns), so each execution reuses their cache key and compiled form.
_EVENTS = cast(Table, CallEvent.__table__)
_CALLS = cast(Table, Call.__table__)
_INTAKE = cast(Table, IntakeField.__table__)
_RECORDINGS = cast(Table, Recording.__table__)
_ADD_EVENT = _EVENTS.insert()
_ADD_CALL = _CALLS.insert()
_CALL_OF_UNIQUEID = select(_CALLS.c.id).where(_CALLS.c.node == bindparam("b_node"),
                                              _CALLS.c.uniqueid == bindparam("b_uid"))
_ADD_INTAKE = _INTAKE.insert()
_ADD_RECORDING = _RECORDINGS.insert()
_SET_CALL = _CALLS.update().where(_CALLS.c.id == bindparam("b_id"))
#: On a hang-up: an end the reconciliation already recorded stands. The dialplan ends
#: AGI() as soon as the caller hangs up (AGIEXITONHANGUP), so the hang-up stamp may be
#: folded in before the controller gets here: its end, its end reason (a PBX restart is
#: no caller's hang-up) and its fallback reason are kept.
_SET_CALL_ENDED = _SET_CALL.values(
    ended_at=func.coalesce(_CALLS.c.ended_at,
                           bindparam("b_ended", type_=_CALLS.c.ended_at.type)),
    end_reason=case((_CALLS.c.reconciled_at.is_(None),
                     bindparam("b_reason", type_=_CALLS.c.end_reason.type)),
                    else_=_CALLS.c.end_reason),
    fallback_reason=func.coalesce(_CALLS.c.fallback_reason,
                                  bindparam("b_fallback",
                                            type_=_CALLS.c.fallback_reason.type)))
_THE_FIELD = (_INTAKE.c.call_id == bindparam("b_call"), _INTAKE.c.field == bindparam("b_field"))
_SET_INTAKE = _INTAKE.update().where(*_THE_FIELD)
_CONFIRM_INTAKE = _INTAKE.update().where(*_THE_FIELD).values(confirmed=True)


def _event(call_id: str, kind: str, at: datetime, detail: dict[str, Any]) -> dict[str, Any]:
    return {"call_id": call_id, "at": at, "kind": kind, "detail": json.dumps(detail)}


# Every step of a call below goes through ivr.records.journal.write: in the database
# now, or, while the database is gone, in the controller's journal (replayed when it is
# back). Each step is a registered function of (conn, call id, args) that takes its time
# as an argument, so a replayed step keeps the instant it was taken.

async def add_event(db: Database, call_id: str, kind: str, **detail: Any) -> None:
    """Append one step to the call's timeline; detail must hold no patient data."""
    await journal.write(db, call_id, "event", {"kind": kind, "at": now(), "detail": detail})


@journal.op("event")
async def _add_event(conn: AsyncConnection, call_id: str, *, kind: str, at: datetime,
                     detail: dict[str, Any]) -> None:
    await conn.execute(_ADD_EVENT, _event(call_id, kind, at, detail))


async def update_call(db: Database, call_id: str, **fields: Any) -> None:
    """Set plain (unsealed) columns of the call: one UPDATE; KeyError for no such call.
    A sealed column is refused here (SealedText: no row binds a Core write)."""
    unknown = sorted(set(fields) - set(_CALLS.c.keys())) or (["(none)"] if not fields else [])
    if unknown:  # a Core UPDATE would silently leave out a key that is no column
        raise TypeError(f"update_call: not columns of calls: {', '.join(unknown)}")
    await journal.write(db, call_id, "update", {"fields": fields})


@journal.op("update")
async def _update_call(conn: AsyncConnection, call_id: str, *,
                       fields: dict[str, Any]) -> None:
    done = await conn.execute(_SET_CALL, {"b_id": call_id, **fields})
    if done.rowcount != 1:
        raise KeyError(call_id)


async def save_intake(db: Database, call_id: str, field: str, *, source: str,
                      value: str | None = None, recording_path: str | None = None,
                      duration_seconds: float | None = None, confirmed: bool = False,
                      attempts: int = 1) -> None:
    """Store one intake field now (committed); a later capture of it replaces it."""
    await journal.write(db, call_id, "intake", {
        "field": field, "source": source, "value": value, "recording_path": recording_path,
        "duration_seconds": duration_seconds, "confirmed": confirmed,
        "attempts": attempts, "at": now()})


@journal.op("intake")
async def _save_intake(conn: AsyncConnection, call_id: str, *, field: str, source: str,
                       value: str | None, recording_path: str | None,
                       duration_seconds: float | None, confirmed: bool, attempts: int,
                       at: datetime) -> None:
    """The value is sealed here for its place (ivr.db.sealed.sealed_values), as the ORM's
    flush would seal it; (call, field) is unique, so an UPDATE that finds no row means
    the first capture and an INSERT follows in the same transaction."""
    values = sealed_values(IntakeField, {
        "call_id": call_id, "field": field, "source": source, "value": value,
        "recording_path": recording_path, "duration_seconds": duration_seconds,
        "confirmed": confirmed, "attempts": attempts, "captured_at": at})
    done = await conn.execute(_SET_INTAKE, {"b_call": call_id, "b_field": field, **values})
    if done.rowcount == 0:
        await conn.execute(_ADD_INTAKE, values)
    await conn.execute(_ADD_EVENT, _event(call_id, f"intake.{field}.captured", at, {
        "source": source, "confirmed": confirmed, "attempts": attempts}))


async def confirm_intake(db: Database, call_id: str, field: str) -> None:
    await journal.write(db, call_id, "confirm", {"field": field, "at": now()})


@journal.op("confirm")
async def _confirm_intake(conn: AsyncConnection, call_id: str, *, field: str,
                          at: datetime) -> None:
    done = await conn.execute(_CONFIRM_INTAKE, {"b_call": call_id, "b_field": field})
    if done.rowcount:
        await conn.execute(_ADD_EVENT, _event(call_id, f"intake.{field}.confirmed", at, {}))


async def has_intake(db: Database, call_id: str, field: str) -> bool:
    async with db.session() as s:
        return await s.scalar(select(IntakeField.id).where(
            IntakeField.call_id == call_id, IntakeField.field == field)) is not None


async def language_of(db: Database, call_id: str) -> str | None:
    """The language the caller was spoken to in (None: the default, English)."""
    async with db.session() as s:
        return await s.scalar(select(Call.language).where(Call.id == call_id))


async def add_recording(db: Database, call_id: str, field: str, *, path: str,
                        duration_seconds: float, size_bytes: int, peak: int,
                        rms: float) -> None:
    await journal.write(db, call_id, "recording", {
        "field": field, "path": path, "duration_seconds": duration_seconds,
        "size_bytes": size_bytes, "peak": peak, "rms": rms, "at": now()})


@journal.op("recording")
async def _add_recording(conn: AsyncConnection, call_id: str, *, field: str, path: str,
                         duration_seconds: float, size_bytes: int, peak: int, rms: float,
                         at: datetime) -> None:
    await conn.execute(_ADD_RECORDING, {
        "call_id": call_id, "field": field, "path": path,
        "duration_seconds": duration_seconds, "size_bytes": size_bytes, "peak": peak,
        "rms": rms, "created_at": at})


async def finish_call(db: Database, call_id: str, *, result: str, hung_up: bool,
                      fallback_reason: str | None = None) -> None:
    """Record what the controller decided at the end of its part of the call (committed
    before the sentinel)."""
    await journal.write(db, call_id, "finish", {
        "result": result, "hung_up": hung_up, "fallback_reason": fallback_reason,
        "at": now()})


@journal.op("finish")
async def _finish_call(conn: AsyncConnection, call_id: str, *, result: str, hung_up: bool,
                       fallback_reason: str | None, at: datetime) -> None:
    values: dict[str, Any] = {"b_id": call_id, "result": result}
    if hung_up:
        values.update(b_reason=END_CALLER_HANGUP, b_ended=at, b_fallback=fallback_reason)
    else:
        values["fallback_reason"] = fallback_reason
        if result == contract.RESULT_DONE:
            values["end_reason"] = END_COMPLETED
    done = await conn.execute(_SET_CALL_ENDED if hung_up else _SET_CALL, values)
    if done.rowcount != 1:
        raise KeyError(call_id)
    await conn.execute(_ADD_EVENT, _event(call_id, "controller.finished", at, {
        "result": result, "hung_up": hung_up, "fallback_reason": fallback_reason}))


def _end_reason_from_stamp(stamp: Stamp, recording_exists: bool) -> str:
    """How a call ended, judged from the dialplan's last stage and who hung up."""
    if stamp.stage == contract.STAGE_FALLBACK_ANSWERED:
        return END_FALLBACK_ANSWERED
    if stamp.stage in (contract.STAGE_FALLBACK_RECORDED, contract.STAGE_FALLBACK_RECORD):
        return END_FALLBACK_RECORDED if recording_exists else END_FALLBACK_ABANDONED
    if stamp.hangup_by == contract.HANGUP_BY_PBX and stamp.result == "":
        # Nobody hung up while the call was still going: the PBX ended it (restart, stop).
        return END_PBX_RESTART
    if stamp.stage.startswith(contract.STAGE_FALLBACK):
        return END_FALLBACK_ABANDONED
    if stamp.result in (contract.RESULT_DONE, contract.RESULT_BRIDGE):
        return END_COMPLETED
    return END_CALLER_HANGUP


#: End reasons a stamp may put over the controller's own verdict: the controller saw an
#: AGI hang-up, which is what a PBX restart looks like from its side too.
_STAMP_OVERRIDES = (END_FALLBACK_ANSWERED, END_FALLBACK_RECORDED, END_FALLBACK_ABANDONED,
                    END_PBX_RESTART)


async def _close_open_legs(s: Any, call_id: str, ended_at: datetime, detail: str) -> int:
    """Close the call's accepted live legs that have no end (their controller died during
    the bridge): they ended with the caller's channel at the latest."""
    legs = (await s.scalars(select(OncallLeg).where(
        OncallLeg.call_id == call_id, OncallLeg.kind == LEG_LIVE,
        OncallLeg.status == LEG_ACCEPTED, OncallLeg.ended_at.is_(None)))).all()
    for leg in legs:
        close_leg(leg, ended_at, detail)
    return len(legs)


def close_leg(leg: OncallLeg, ended_at: datetime, detail: str) -> None:
    """Give a leg that lost its controller an end (and its bridge a length)."""
    leg.ended_at = max(ended_at, leg.placed_at)
    if leg.bridged_at is not None and leg.bridge_seconds is None:
        leg.bridge_seconds = round(max((leg.ended_at - leg.bridged_at).total_seconds(),
                                       0.0), 2)
    leg.detail = leg.detail or detail


async def apply_stamp(db: Database, node: str, stamp: Stamp,
                      recording: Path | None) -> tuple[str, bool]:
    """Fold a hang-up stamp into the record; create the call if the controller never saw it.

    Returns (call id, created). Idempotent: applying a stamp twice changes nothing more.
    """
    recording_exists = recording is not None and recording.exists() \
        and recording.stat().st_size > 44
    async with db.session() as s:
        # Two controllers of one node fold the same stamps at once. The call is claimed by
        # a compare-and-set on reconciled_at, its first write: SQLite runs the SELECT
        # below outside the write transaction, so what it read may be stale by the time
        # this process writes. On PostgreSQL FOR UPDATE also makes the second wait for
        # the first's commit and read the call as it left it. A new call made twice
        # fails the loser on the unique uniqueid; its stamp, still on disk, is applied
        # (as a no-op) next round.
        call = await s.scalar(select(Call).where(Call.node == node,
                                                 Call.uniqueid == stamp.uniqueid)
                              .with_for_update())
        created = call is None
        if call is None:
            call = Call(id=new_call_id(), uniqueid=stamp.uniqueid, node=node,
                        dialled=stamp.did, forwarded_from=stamp.forwarded_from,
                        caller=stamp.caller, started_at=stamp.started_at,
                        seen_by_controller=False)
            s.add(call)
            s.add(CallEvent(call_id=call.id, at=stamp.started_at, kind="call.started",
                            detail=json.dumps({"source": "hangup-stamp"})))
            await s.flush()
        elif call.reconciled_at is not None:
            return call.id, False
        won = await s.execute(update(Call).where(Call.id == call.id,
                                                 Call.reconciled_at.is_(None))
                              .values(reconciled_at=now())
                              .execution_options(synchronize_session=False))
        if won.rowcount != 1:  # type: ignore[attr-defined]
            return call.id, False  # the other controller folded it in meanwhile
        call.ended_at = stamp.ended_at
        call.last_stage = stamp.stage
        reason = _end_reason_from_stamp(stamp, recording_exists)
        # The controller's own verdict on a hang-up stands, unless the fallback took over
        # or the PBX itself ended the call.
        if call.end_reason is None or reason in _STAMP_OVERRIDES:
            call.end_reason = reason
        if stamp.stage.startswith(contract.STAGE_FALLBACK) and call.fallback_reason is None:
            # The dialplan's reason (a timeout, a shed call) or, in stamps older than that
            # field, what a missing sentinel meant.
            call.fallback_reason = stamp.fallback_reason or (
                contract.REASON_CONTROLLER_MISSING if not stamp.result else None)
        if recording_exists:
            call.fallback_recording = str(recording)
        call.reconciled_at = now()
        closed = await _close_open_legs(s, call.id, stamp.ended_at, "closed-by-stamp")
        detail: dict[str, Any] = {"stage": stamp.stage, "result": stamp.result,
                                  "dialstatus": stamp.dialstatus,
                                  "end_reason": call.end_reason}
        if stamp.hangup_by:
            detail["hangup_by"] = stamp.hangup_by
        if closed:
            detail["legs_closed"] = closed
        if stamp.dropped:
            detail["fields_dropped"] = list(stamp.dropped)
        s.add(CallEvent(call_id=call.id, at=stamp.ended_at, kind="call.ended",
                        detail=json.dumps(detail)))
        return call.id, created


async def sweep_lost_calls(db: Database, node: str, live_uniqueids: set[str],
                           stamped_uniqueids: set[str], *, older_than: datetime) -> list[str]:
    """Calls of this node with no end, no channel and no stamp: the PBX lost them.

    Only a crash or a kill of the PBX ends a channel without running its hang-up
    handler, so such a call is recorded `pbx_failure`, ended at its last recorded step.
    Call with the live channels listed *after* the stamps were applied and before
    `stamped_uniqueids` was read, so a call ending in between is found in one of them.
    """
    swept: list[str] = []
    async with db.session() as s:
        open_calls = (await s.execute(select(
            Call.id, Call.uniqueid, Call.started_at, Call.end_reason).where(
            Call.node == node, Call.ended_at.is_(None),
            Call.started_at < older_than))).all()
        for call_id, uniqueid, started_at, end_reason in open_calls:
            if uniqueid in live_uniqueids or uniqueid in stamped_uniqueids:
                continue
            last = await s.scalar(select(CallEvent.at).where(CallEvent.call_id == call_id)
                                  .order_by(CallEvent.at.desc()).limit(1))
            ended = last or started_at
            reason = END_PBX_FAILURE if end_reason in (None, END_CALLER_HANGUP) \
                else end_reason
            # The node's controllers sweep at once: the call is taken by a compare-and-set
            # on its end (the first writer wins; on PostgreSQL the second waits for the
            # first's commit, then finds the call ended), so it is ended once.
            won = await s.execute(update(Call).where(
                Call.id == call_id, Call.ended_at.is_(None)).values(
                ended_at=ended, end_reason=reason, reconciled_at=now())
                .execution_options(synchronize_session=False))
            if won.rowcount != 1:  # type: ignore[attr-defined]
                continue
            closed = await _close_open_legs(s, call_id, ended, "closed-pbx-lost")
            s.add(CallEvent(call_id=call_id, at=now(), kind="call.ended",
                            detail=json.dumps({"end_reason": reason,
                                               "source": "no-channel-no-stamp",
                                               "legs_closed": closed})))
            swept.append(call_id)
    return swept


# --- reading ---------------------------------------------------------------------------

def call_summary(call: Call) -> dict[str, Any]:
    return {
        "id": call.id, "uniqueid": call.uniqueid, "node": call.node,
        "practice_id": call.practice_id, "dialled": call.dialled,
        "forwarded_from": call.forwarded_from, "caller": call.caller, "route": call.route,
        "started_at": clock.iso(call.started_at), "ended_at": clock.iso(call.ended_at),
        "end_reason": call.end_reason, "result": call.result,
        "fallback_reason": call.fallback_reason, "last_stage": call.last_stage,
        "fallback_recording": call.fallback_recording,
        "seen_by_controller": call.seen_by_controller,
        "reconciled_at": clock.iso(call.reconciled_at),
        "rules_digest": call.rules_digest, "state": call.state_kind,
        "state_reason": call.state_reason, "disposition": call.disposition,
        "caller_told": call.caller_told, "operator_flag": call.operator_flag,
        "same_day_callback": call.same_day_callback, "abandoned_step": call.abandoned_step,
        "oncall_outcome": call.oncall_outcome, "oncall_clinician": call.oncall_clinician,
        "recordings_purged_at": clock.iso(call.recordings_purged_at),
        "language": call.language, "red_flag": call.red_flag_topic,
    }


def _intake_json(row: IntakeField) -> dict[str, Any]:
    return {"field": row.field, "value": row.value, "recording_path": row.recording_path,
            "duration_seconds": row.duration_seconds, "captured_at": clock.iso(row.captured_at),
            "confirmed": row.confirmed, "source": row.source, "attempts": row.attempts}


def transcript_json(row: Transcript) -> dict[str, Any]:
    """A transcript as people and the webhook see it, marked as a machine's."""
    return {"field": row.field, "status": row.status, "text": row.text,
            "mark": TRANSCRIPT_MARK, "language": row.language, "engine": row.engine,
            "engine_version": row.engine_version, "confidence": row.confidence,
            "audio_seconds": row.audio_seconds, "cpu_seconds": row.cpu_seconds,
            "wall_seconds": row.wall_seconds, "red_flag": row.red_flag_topic,
            "red_flag_phrase": row.red_flag or None, "note": row.note or None,
            "created_at": clock.iso(row.created_at)}


def _recording_json(row: Recording) -> dict[str, Any]:
    return {"field": row.field, "path": row.path, "duration_seconds": row.duration_seconds,
            "size_bytes": row.size_bytes, "peak": row.peak, "rms": row.rms,
            "created_at": clock.iso(row.created_at)}


async def list_calls(db: Database, *, practice: str | None = None,
                     since: datetime | None = None, limit: int = 200,
                     operator_only: bool = False,
                     caller: str | None = None) -> list[dict[str, Any]]:
    """Recent calls, newest first; `operator_only`: the ones flagged for an operator
    (unknown numbers), which belong to no practice's morning report; `caller`: the calls
    from that number (found by its blind index: the numbers themselves are sealed)."""
    async with db.session() as s:
        query = (select(Call).options(selectinload(Call.intake))
                 .order_by(Call.started_at.desc()).limit(limit))
        if caller:
            query = query.where(Call.caller_index.in_(lookup_indexes(CALLER_INDEX, caller)))
        if practice:
            query = query.where(Call.practice_id == practice)
        if operator_only:
            query = query.where(Call.operator_flag.is_(True))
        if since:
            query = query.where(Call.started_at >= since)
        out = []
        for call in (await s.scalars(query)).all():
            row = call_summary(call)
            row["intake"] = {f.field: _intake_json(f) for f in call.intake}
            out.append(row)
        return out


async def show_call(db: Database, ident: str) -> dict[str, Any] | None:
    """One call with its timeline, found by call id or Asterisk uniqueid."""
    async with db.session() as s:
        query = select(Call).options(selectinload(Call.events), selectinload(Call.intake),
                                     selectinload(Call.recordings),
                                     selectinload(Call.transcripts))
        call = await s.scalar(query.where(Call.id == ident))
        if call is None:
            call = await s.scalar(query.where(Call.uniqueid == ident))
        if call is None:
            return None
        out = call_summary(call)
        out["intake"] = {f.field: _intake_json(f) for f in call.intake}
        out["recordings"] = [_recording_json(r) for r in call.recordings]
        out["transcripts"] = [transcript_json(t) for t in call.transcripts]
        out["timeline"] = [{"at": clock.iso(e.at), "kind": e.kind, "detail": json.loads(e.detail)}
                           for e in call.events]
    from ivr.oncall import callbacks

    out["oncall_legs"] = await callbacks.legs_of_call(db, out["id"])
    cb = await callbacks.for_call(db, out["id"])
    out["callback"] = callbacks.callback_json(cb) if cb is not None else None
    return out
