"""Pure on-call resolution: who covers a role at an instant, and the escalation dial list.

Precedence for a role at an instant: an explicit shift from the YAML, then an iCal
event, then the weekly rotation; nobody if none of them covers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from ivr.rules.model import Clinician, Practice, Rotation, Shift, Target
from ivr.rules.timeutil import local_instant, require_aware


@dataclass(frozen=True)
class DialStep:
    """One ring of the escalation chain, in order (attempts expanded)."""

    clinician_id: str
    name: str
    role: str
    number: str  # E.164
    ring_seconds: int
    attempt: int  # 1-based, within its escalation step
    step_index: int  # 0-based index into on_call.escalation
    ring: int = 0  # 0-based; entries with the same ring are rung at the same time

    def to_json(self) -> dict[str, object]:
        return {"step": self.step_index, "attempt": self.attempt, "ring": self.ring,
                "clinician_id": self.clinician_id, "name": self.name, "role": self.role,
                "number": self.number, "ring_seconds": self.ring_seconds}


class TimelineEntry(NamedTuple):
    role: str
    clinician_id: str | None
    start: datetime
    end: datetime
    source: str  # 'shift' | 'ical' | 'rotation' | 'gap'


def _rotation_week(rot: Rotation, tz: ZoneInfo, t: datetime) -> date:
    """Local date of the handoff that started the rotation week containing t."""
    loc = t.astimezone(tz)
    day = loc.date() - timedelta(days=(loc.weekday() - rot.handoff_weekday) % 7)
    if local_instant(day, rot.handoff_minute, tz) > t:
        day -= timedelta(days=7)
    return day


def _anchor_week(rot: Rotation) -> date:
    """The handoff date on or before the anchor: the first person's week starts there."""
    return rot.anchor - timedelta(days=(rot.anchor.weekday() - rot.handoff_weekday) % 7)


def rotation_at(rot: Rotation, tz: ZoneInfo, t: datetime) -> tuple[str, datetime, datetime]:
    """(clinician id, week start, week end) of the rotation at instant t."""
    week = _rotation_week(rot, tz, t)
    index = ((week - _anchor_week(rot)).days // 7) % len(rot.order)
    start = local_instant(week, rot.handoff_minute, tz)
    end = local_instant(week + timedelta(days=7), rot.handoff_minute, tz)
    return rot.order[index], start, end


def _shift_at(shifts: tuple[Shift, ...], role: str, t: datetime) -> Shift | None:
    for s in shifts:
        if s.role == role and s.start <= t < s.end:
            return s
    return None


def resolve(practice: Practice, role: str, instant: datetime) -> tuple[str | None, str]:
    """(clinician id or None, source) covering `role` at `instant`."""
    t = require_aware(instant)
    oc = practice.on_call
    for shifts in (oc.shifts, oc.ical_shifts):
        s = _shift_at(shifts, role, t)
        if s is not None:
            return s.clinician_id, s.source
    rot = oc.rotations.get(role)
    if rot is not None:
        return rotation_at(rot, practice.tz, t)[0], "rotation"
    return None, "gap"


def on_call(practice: Practice, role: str, instant: datetime) -> Clinician | None:
    """The clinician on call for `role` at `instant`, or None when nobody covers it."""
    cid, _ = resolve(practice, role, instant)
    return practice.on_call.clinicians[cid] if cid is not None else None


def _who(practice: Practice, target: Target, instant: datetime) -> Clinician | None:
    if target.clinician_id is not None:
        return practice.on_call.clinicians[target.clinician_id]
    assert target.role is not None
    return on_call(practice, target.role, instant)


def dial_list(practice: Practice, instant: datetime) -> tuple[DialStep, ...]:
    """The escalation chain at `instant`: each step's clinicians, once per attempt.

    A role with nobody on call is skipped (the coverage warning reported it); a person
    reached twice by one `together` step (by role and by name) is rung once.
    """
    out: list[DialStep] = []
    ring = 0
    for index, step in enumerate(practice.on_call.escalation):
        people: list[tuple[Clinician, str]] = []
        for target in step.targets:
            who = _who(practice, target, instant)
            if who is not None and all(who.id != p.id for p, _ in people):
                people.append((who, target.role or who.role))
        if not people:
            continue
        for attempt in range(1, step.attempts + 1):
            out.extend(DialStep(who.id, who.name, role, who.phone, step.ring_seconds, attempt,
                                index, ring) for who, role in people)
            ring += 1
    return tuple(out)


MIN_ATTEMPTS = 6  # at least this many call-back attempts before giving up, by default


def callback_chain(practice: Practice, instant: datetime) -> tuple[DialStep, ...]:
    """Who is called back, in turn: each person of the escalation chain once, in order.

    A step's `attempts` are rings of the live search; how often one person is called
    back is `when_exhausted.attempts_per_person`.
    """
    first: dict[str, DialStep] = {}
    for step in dial_list(practice, instant):
        first.setdefault(step.clinician_id, step)
    return tuple(first.values())


def step_for(chain: tuple[DialStep, ...], attempt_no: int, per_person: int) -> DialStep:
    """Who call-back attempt `attempt_no` (1-based) calls: each person `per_person`
    times, then the next in the chain, round and round."""
    return chain[((attempt_no - 1) // per_person) % len(chain)]


def max_attempts(practice: Practice, instant: datetime) -> int:
    """Call-back attempts before giving up: the rules' limit, else two full rounds of the
    chain and never fewer than MIN_ATTEMPTS."""
    we = practice.on_call.when_exhausted
    if we.max_attempts is not None:
        return we.max_attempts
    return max(MIN_ATTEMPTS, 2 * len(callback_chain(practice, instant)) * we.attempts_per_person)


def rings(steps: tuple[DialStep, ...]) -> list[tuple[DialStep, ...]]:
    """The chain grouped into rings: each group is rung at the same time, in order."""
    groups: dict[int, list[DialStep]] = {}
    for step in steps:
        groups.setdefault(step.ring, []).append(step)
    return [tuple(group) for _, group in sorted(groups.items())]


def fallback_numbers(practice: Practice, instant: datetime) -> tuple[str, ...]:
    """Numbers the PBX dials when the controller is down: explicit list, else the dial list's."""
    if practice.fallback_numbers:
        return practice.fallback_numbers
    return tuple(dict.fromkeys(step.number for step in dial_list(practice, instant)))


def _boundaries(practice: Practice, role: str, start: datetime, end: datetime) -> list[datetime]:
    """Instants in [start, end] at which the coverage of `role` may change."""
    oc = practice.on_call
    points = {start, end}
    for s in oc.shifts + oc.ical_shifts:
        if s.role == role:
            points.update(b for b in (s.start, s.end) if start < b < end)
    rot = oc.rotations.get(role)
    if rot is not None:
        week = _rotation_week(rot, practice.tz, start)
        while True:
            week += timedelta(days=7)
            b = local_instant(week, rot.handoff_minute, practice.tz)
            if b >= end:
                break
            points.add(b)
    return sorted(points)


def timeline(practice: Practice, start: datetime, end: datetime) -> list[TimelineEntry]:
    """Who covers each role between start and end, as merged (role, id, from, to, source)."""
    start, end = require_aware(start, "start"), require_aware(end, "end")
    out: list[TimelineEntry] = []
    for role in practice.on_call.roles:
        points = _boundaries(practice, role, start, end)
        merged: list[TimelineEntry] = []
        for a, b in zip(points, points[1:], strict=False):
            cid, source = resolve(practice, role, a)
            if merged and merged[-1].clinician_id == cid and merged[-1].source == source:
                merged[-1] = merged[-1]._replace(end=b)
            else:
                merged.append(TimelineEntry(role, cid, a, b, source))
        out.extend(merged)
    return out
