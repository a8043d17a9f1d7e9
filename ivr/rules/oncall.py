"""Pure on-call resolution: who covers a role at an instant, and the escalation dial list.

Precedence for a role at an instant: an explicit shift from the YAML, then an iCal
event, then the rotation (from its start on); nobody if none of them covers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from ivr.rules.ical import shifts_between
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


def rotation_begins(rot: Rotation, tz: ZoneInfo) -> datetime:
    """The instant the rotation starts covering: its `start`, else its first handoff."""
    if rot.start is not None:
        return rot.start
    return local_instant(rot.first_handoff, rot.handoff_minute, tz)


def _turn(rot: Rotation, tz: ZoneInfo, t: datetime) -> tuple[int, date, date]:
    """(turn number from the first handoff, its first local day, the day after it)."""
    loc = t.astimezone(tz)
    days = (loc.date() - rot.first_handoff).days
    if local_instant(loc.date(), rot.handoff_minute, tz) > t:
        days -= 1  # before today's handoff: still yesterday's turn
    cycle, rest = divmod(days, sum(rot.pattern))
    offset = cycle * sum(rot.pattern)
    for j, length in enumerate(rot.pattern):
        if rest < length:
            first = rot.first_handoff + timedelta(days=offset)
            return cycle * len(rot.pattern) + j, first, first + timedelta(days=length)
        rest -= length
        offset += length
    raise AssertionError("unreachable: rest < sum(pattern)")


def rotation_at(rot: Rotation, tz: ZoneInfo, t: datetime
                ) -> tuple[str | None, datetime, datetime]:
    """(clinician id, turn start, turn end) of the rotation at instant t.

    Before the rotation begins: (None, t, the instant it begins); it never runs
    backwards from its anchor.
    """
    begins = rotation_begins(rot, tz)
    if t < begins:
        return None, t, begins
    k, first, after = _turn(rot, tz, t)
    start = max(local_instant(first, rot.handoff_minute, tz), begins)
    return rot.order[k % len(rot.order)], start, local_instant(after, rot.handoff_minute, tz)


def _ical(practice: Practice, start: datetime, end: datetime) -> tuple[Shift, ...]:
    source = practice.on_call.ical_source
    return () if source is None else shifts_between(source, start, end)


def _shift_at(shifts: tuple[Shift, ...], role: str, t: datetime) -> Shift | None:
    for s in shifts:
        if s.role == role and s.start <= t < s.end:
            return s
    return None


def resolve(practice: Practice, role: str, instant: datetime) -> tuple[str | None, str]:
    """(clinician id or None, source) covering `role` at `instant`."""
    t = require_aware(instant)
    oc = practice.on_call
    for shifts in (oc.shifts, _ical(practice, t, t)):
        s = _shift_at(shifts, role, t)
        if s is not None:
            return s.clinician_id, s.source
    rot = oc.rotations.get(role)
    if rot is not None:
        cid = rotation_at(rot, practice.tz, t)[0]
        if cid is not None:
            return cid, "rotation"
    return None, "gap"


def on_call(practice: Practice, role: str, instant: datetime) -> Clinician | None:
    """The clinician on call for `role` at `instant`, or None when nobody covers it."""
    cid, _ = resolve(practice, role, instant)
    return practice.on_call.clinicians[cid] if cid is not None else None


def _who(practice: Practice, target: Target, instant: datetime, rung: set[str]
         ) -> list[Clinician]:
    """Whom `target` reaches at `instant`; `rung`: ids the chain has rung before."""
    clinicians = practice.on_call.clinicians
    if target.clinician_id is not None:
        return [clinicians[target.clinician_id]]
    if target.others_of is not None:
        return [c for c in clinicians.values() if c.role == target.others_of and c.id not in rung]
    assert target.role is not None
    who = on_call(practice, target.role, instant)
    return [who] if who is not None else []


def dial_list(practice: Practice, instant: datetime) -> tuple[DialStep, ...]:
    """The escalation chain at `instant`: each step's clinicians, once per attempt.

    A role with nobody on call is skipped (the coverage warning reported it); a person
    reached twice by one `together` step (by role and by name) is rung once. An
    `others_of` step rings the role's members not rung by an earlier step, one after
    another (each `attempts` times); inside `together` they ring with the rest.
    """
    out: list[DialStep] = []
    ring = 0
    rung: set[str] = set()
    for index, step in enumerate(practice.on_call.escalation):
        people: list[tuple[Clinician, str]] = []
        for target in step.targets:
            for who in _who(practice, target, instant, rung):
                if all(who.id != p.id for p, _ in people):
                    people.append((who, target.role or target.others_of or who.role))
        if not people:
            continue
        turns = [[one] for one in people] if step.others_of else [people]
        for turn in turns:
            for attempt in range(1, step.attempts + 1):
                out.extend(DialStep(who.id, who.name, role, who.phone, step.ring_seconds,
                                    attempt, index, ring) for who, role in turn)
                ring += 1
        rung.update(who.id for who, _ in people)
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
    for s in oc.shifts + _ical(practice, start, end):
        if s.role == role:
            points.update(b for b in (s.start, s.end) if start < b < end)
    rot = oc.rotations.get(role)
    if rot is not None:
        at = start
        while True:
            _, _, turn_end = rotation_at(rot, practice.tz, at)
            if turn_end >= end or turn_end <= at:
                break
            points.add(turn_end)
            at = turn_end
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
