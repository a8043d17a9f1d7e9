"""Read on-call shifts from an iCalendar export (bytes in, Shift objects out; no file I/O).

A calendar is untrusted input: before icalendar parses it, a scan of the raw lines
bounds its nesting, its number of components and events, and refuses recurrences
more frequent than hourly (anywhere: a VTIMEZONE rule is expanded at parse time).
After parsing, every recurring event's rule is checked against how many instances
it can make in a day and in total, and the window is expanded in slices with a cap
on the occurrences kept, so neither memory nor time grows with a hostile rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from ivr.rules.limits import (
    ICAL_CHUNK_OCCURRENCES,
    MAX_ICAL_COMPONENTS,
    MAX_ICAL_EVENTS,
    MAX_ICAL_NESTING,
    MAX_ICAL_OCCURRENCES,
    MAX_OCCURRENCES_PER_DAY,
    MAX_RRULE_STEPS,
    UNLIMITED,
    Deadline,
)
from ivr.rules.model import Clinician, IcalSource, Shift
from ivr.rules.timeutil import UTC, local_naive_to_instant

_UNFOLD = re.compile(rb"\r?\n[ \t]")
_FREQ = re.compile(rb"FREQ=([A-Z]*)", re.IGNORECASE)
FREQUENCIES = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_TZ_PARTS = (b"STANDARD", b"DAYLIGHT")  # VTIMEZONE's rules: yearly in every real zone


class IcalProblem(ValueError):
    """The calendar cannot be used; the message says which event and why."""


def _short(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def _summary(ev: Any) -> str:
    try:
        return str(ev.get("SUMMARY", "")).strip()[:60]
    except Exception:  # a broken SUMMARY must not hide the error being reported
        return "?"


def _instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    """DTSTART/DTEND as an instant: all-day dates and floating times are practice-local."""
    if not isinstance(value, datetime):
        return local_naive_to_instant(datetime(value.year, value.month, value.day), tz)
    if value.tzinfo is None:
        return local_naive_to_instant(value, tz)
    return value.astimezone(UTC)


def match_clinician(text: str, clinicians: Mapping[str, Clinician]) -> str | None:
    """The clinician id an event names: the whole text, else exactly one id as a word in it."""
    text = text.strip()
    lowered = {cid.lower(): cid for cid in clinicians}
    if text.lower() in lowered:
        return lowered[text.lower()]
    words = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9-]*", text.lower()))
    found = [cid for low, cid in lowered.items() if low in words]
    return found[0] if len(found) == 1 else None


def scan(data: bytes) -> None:
    """Refuse, from the raw lines, what would make parsing or expanding unbounded."""
    stack: list[bytes] = []
    components = events = 0
    for number, line in enumerate(_UNFOLD.sub(b"", data).splitlines(), start=1):
        head = line[:6].upper()
        if head == b"BEGIN:":
            name = line[6:].strip().upper()
            stack.append(name)
            components += 1
            events += name == b"VEVENT"
            if len(stack) > MAX_ICAL_NESTING:
                raise IcalProblem(f"line {number}: components nested deeper than "
                                  f"{MAX_ICAL_NESTING} levels")
            if components > MAX_ICAL_COMPONENTS:
                raise IcalProblem(f"more than {MAX_ICAL_COMPONENTS:,} components")
            if events > MAX_ICAL_EVENTS:
                raise IcalProblem(f"more than {MAX_ICAL_EVENTS:,} events (VEVENT)")
        elif line[:4].upper() == b"END:":
            if stack:
                stack.pop()
        elif line[:5].upper() in (b"RRULE", b"EXRUL"):
            match = _FREQ.search(line)
            freq = match.group(1).upper().decode() if match else ""
            where = stack[-1].decode(errors="replace") if stack else "?"
            if freq in ("SECONDLY", "MINUTELY"):
                raise IcalProblem(f"line {number}: {where} recurs {freq}; on-call events may "
                                  "recur at most hourly (FREQ=HOURLY, DAILY, WEEKLY, ...)")
            if stack and stack[-1] in _TZ_PARTS and freq not in ("YEARLY", ""):
                raise IcalProblem(f"line {number}: a time zone rule recurs {freq}; "
                                  "VTIMEZONE rules recur YEARLY")


def _values(rule: Mapping[str, Any], key: str) -> list[Any]:
    value = rule.get(key) or []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _per_day(rule: Mapping[str, Any]) -> int:
    """An upper bound of the instances `rule` makes in one day."""
    freq = str((_values(rule, "FREQ") or [""])[0]).upper()
    interval = int((_values(rule, "INTERVAL") or [1])[0] or 1)
    hours = len(_values(rule, "BYHOUR"))
    if freq == "HOURLY":
        hours = min(hours or 24, math.ceil(24 / max(interval, 1)))
    return max(hours, 1) * max(len(_values(rule, "BYMINUTE")), 1) * max(
        len(_values(rule, "BYSECOND")), 1)


def _day_of(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


def _rules_of(component: Any) -> list[Mapping[str, Any]]:
    value = component.get("RRULE")
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def check_recurrences(events: Iterable[Any], end: datetime) -> int:
    """Refuse rules that recur too often; their total instances per day."""
    density = 0
    steps = 0
    for ev in events:
        summary = _summary(ev)
        try:
            first = _day_of(getattr(ev.get("DTSTART"), "dt", None))
        except Exception:  # reported with the occurrence, if it is in the window
            first = None
        try:
            rules = _rules_of(ev)
        except Exception as exc:
            raise IcalProblem(f"event {summary!r}: unreadable RRULE ({_short(exc)})") from None
        for rule in rules:
            try:
                freq = str((_values(rule, "FREQ") or [""])[0]).upper()
                per_day = _per_day(rule)
                count = _values(rule, "COUNT")
                until = _day_of((_values(rule, "UNTIL") or [None])[0])
            except Exception as exc:  # a broken property is not a mapping of lists
                raise IcalProblem(f"event {summary!r}: unreadable RRULE ({_short(exc)})") from None
            if freq not in FREQUENCIES:
                raise IcalProblem(f"event {summary!r}: RRULE FREQ={freq or '(none)'}; expected "
                                  "one of " + ", ".join(FREQUENCIES))
            if per_day > MAX_OCCURRENCES_PER_DAY:
                raise IcalProblem(f"event {summary!r} can recur {per_day:,} times a day; "
                                  f"at most {MAX_OCCURRENCES_PER_DAY} (hourly)")
            density += per_day
            if first is None:
                continue
            last = min(until, end.date()) if until else end.date()
            made = per_day * max((last - first).days + 1, 0)
            if count:
                try:
                    made = min(made, int(count[0]))
                except (TypeError, ValueError):
                    pass
            steps += made
            if steps > MAX_RRULE_STEPS:
                raise IcalProblem(
                    f"event {summary!r} (from {first}) makes the calendar's rules produce more "
                    f"than {MAX_RRULE_STEPS:,} instances up to {end.date()}; start the "
                    "series later or recur less often")
    return density


def _series(cal: Any, events: list[Any]) -> list[tuple[Any, int]]:
    """A calendar per recurring series (its UID), one for all single events; and density.

    Expanded one series at a time, the time budget is checked between two series: a
    rule that never matches (30 February) costs dateutil seconds inside one call, and
    in a single query over the whole calendar forty of them would run back to back.
    """
    def uid(i: int, ev: Any) -> str:
        return str(ev.get("UID", "")) or f"#{i}"

    recurring: dict[str, list[Any]] = {}
    for i, ev in enumerate(events):
        if _rules_of(ev) or ev.get("RDATE") is not None:
            recurring[uid(i, ev)] = []
    single: list[Any] = []
    for i, ev in enumerate(events):
        recurring.get(uid(i, ev), single).append(ev)
    zones = [c for c in getattr(cal, "subcomponents", []) if c.name == "VTIMEZONE"]

    def calendar(members: list[Any]) -> Any:
        part = icalendar.Calendar()
        for component in (*zones, *members):
            part.add_component(component)
        return part

    out = [(calendar(members), sum(_per_day(r) for ev in members for r in _rules_of(ev)))
           for members in recurring.values()]
    if single:
        out.append((calendar(single), 1))
    return out


def _shift(ev: Any, prop: str, tz: ZoneInfo, clinicians: Mapping[str, Clinician]) -> Shift:
    named = ev.get(prop)
    summary = str(ev.get("SUMMARY", "")).strip()
    dtstart = ev.get("DTSTART")
    if named is None:
        raise IcalProblem(f"event {summary!r} has no {prop} naming a clinician")
    cid = match_clinician(str(named), clinicians)
    if cid is None:
        raise IcalProblem(
            f"event {summary!r} ({dtstart.dt if dtstart else '?'}): {prop} {str(named)!r} "
            "names no known clinician id"
        )
    if dtstart is None:
        raise IcalProblem(f"event {summary!r} has no start (DTSTART)")
    try:
        s = _instant(dtstart.dt, tz)
        if ev.get("DTEND") is not None:
            e = _instant(ev["DTEND"].dt, tz)
        elif ev.get("DURATION") is not None:
            e = s + ev["DURATION"].dt
        elif not isinstance(dtstart.dt, datetime):
            e = _instant(dtstart.dt + timedelta(days=1), tz)
        else:
            raise IcalProblem(f"event {summary!r} has no end")
    except (OverflowError, ValueError, TypeError, AttributeError) as exc:
        if isinstance(exc, IcalProblem):
            raise
        raise IcalProblem(f"event {summary!r}: unusable start or end "
                          f"({type(exc).__name__}: {_short(exc)})") from None
    if e <= s:
        raise IcalProblem(f"event {summary!r} ends before it starts")
    label = f"{summary} {s.astimezone(tz):%Y-%m-%d %H:%M}"
    return Shift(cid, clinicians[cid].role, s, e, "ical", label)


def read_ical_shifts(data: bytes, tz: ZoneInfo, clinicians: Mapping[str, Clinician],
                     start: datetime, end: datetime, prop: str = "SUMMARY",
                     deadline: Deadline = UNLIMITED) -> list[Shift]:
    """Every event occurrence between `start` and `end` as a Shift for the clinician it names.

    `prop` is the property holding the clinician id (SUMMARY by default, or e.g.
    X-CLINICIAN). Recurring events are expanded over the window only (see
    `shifts_between` for the window around an instant). At most MAX_ICAL_OCCURRENCES
    occurrences; `deadline` is checked as the expansion goes.
    """
    scan(data)
    try:
        cal = icalendar.Calendar.from_ical(data)
    except Exception as exc:  # the parser raises several unrelated types on bad input
        raise IcalProblem(f"cannot parse iCalendar data: {_short(exc)}") from None
    deadline.check()
    try:
        events = list(cal.walk("VEVENT"))
    except Exception as exc:
        raise IcalProblem(f"cannot read the events: {_short(exc)}") from None
    check_recurrences(events, end)
    lo0, hi = start.astimezone(tz), end.astimezone(tz)
    seen: set[tuple[str, datetime, datetime]] = set()
    shifts = []
    for series, density in _series(cal, events):
        # Slices sized so that one holds about ICAL_CHUNK_OCCURRENCES instances: the
        # library makes a full copy of every occurrence a query returns.
        days = max(1, ICAL_CHUNK_OCCURRENCES // max(density, 1))
        try:
            query = recurring_ical_events.of(series)
        except Exception as exc:  # the library raises several unrelated types on bad input
            raise IcalProblem(f"cannot expand recurring events: {_short(exc)}") from None
        lo = lo0
        while lo < hi:
            deadline.check()
            top = min(lo + timedelta(days=days), hi)
            try:
                occurrences = query.between(lo, top)
            except Exception as exc:
                raise IcalProblem(f"cannot expand recurring events: {_short(exc)}") from None
            for i, ev in enumerate(occurrences):
                if i % 256 == 255:
                    deadline.check()
                try:
                    shift = _shift(ev, prop, tz, clinicians)
                except IcalProblem:
                    raise
                except Exception as exc:  # icalendar raises its own types for broken values
                    raise IcalProblem(f"event {_summary(ev)!r}: unusable "
                                      f"({type(exc).__name__}: {_short(exc)})") from None
                key = (str(ev.get("UID", "")), shift.start, shift.end)
                if key in seen:  # an occurrence across a slice boundary is returned twice
                    continue
                seen.add(key)
                shifts.append(shift)
                if len(shifts) > MAX_ICAL_OCCURRENCES:
                    raise IcalProblem(
                        f"more than {MAX_ICAL_OCCURRENCES:,} on-call events between "
                        f"{start.astimezone(tz):%Y-%m-%d} and {end.astimezone(tz):%Y-%m-%d}")
            lo = top
    shifts.sort(key=lambda sh: sh.start)
    return shifts


# Who is on call at an instant is read from the calendar around that instant, in
# fixed blocks of days (cached), so the answer never depends on when the rules were
# loaded. An event that overlaps a block is in it, however early it began.
BLOCK_DAYS = 28
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=64)
def _block(source: IcalSource, block: int) -> tuple[Shift, ...]:
    start = _EPOCH + block * timedelta(days=BLOCK_DAYS)
    try:
        return tuple(read_ical_shifts(source.data, ZoneInfo(source.timezone),
                                      {c.id: c for c in source.clinicians}, start,
                                      start + timedelta(days=BLOCK_DAYS), source.prop))
    except IcalProblem:
        # The load checked the calendar around its `now`; far from it a rule may pass a
        # limit: those blocks have no events and the rotation covers them.
        return ()


def shifts_between(source: IcalSource, start: datetime, end: datetime) -> tuple[Shift, ...]:
    """The calendar's shifts overlapping [start, end], in order of their start."""
    first = (start - _EPOCH) // timedelta(days=BLOCK_DAYS)
    last = (end - _EPOCH) // timedelta(days=BLOCK_DAYS)
    found: dict[tuple[str, datetime, datetime, str], Shift] = {}
    for block in range(first, last + 1):
        for sh in _block(source, block):
            if sh.start <= end and sh.end > start:
                found.setdefault((sh.clinician_id, sh.start, sh.end, sh.label), sh)
    return tuple(sorted(found.values(), key=lambda sh: sh.start))
