"""Read on-call shifts from an iCalendar export (bytes in, Shift objects out; no file I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from .model import Clinician, Shift
from .timeutil import UTC, local_naive_to_instant


class IcalProblem(ValueError):
    """The calendar cannot be used; the message says which event and why."""


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


def read_ical_shifts(data: bytes, tz: ZoneInfo, clinicians: Mapping[str, Clinician],
                     start: datetime, end: datetime, prop: str = "SUMMARY") -> list[Shift]:
    """Every event occurrence between `start` and `end` as a Shift for the clinician it names.

    `prop` is the property holding the clinician id (SUMMARY by default, or e.g.
    X-CLINICIAN). Recurring events are expanded over the window only, so the
    controller should reload its rules at least daily.
    """
    try:
        cal = icalendar.Calendar.from_ical(data)
    except ValueError as exc:
        raise IcalProblem(f"cannot parse iCalendar data: {exc}") from exc
    try:
        events = recurring_ical_events.of(cal).between(start.astimezone(tz), end.astimezone(tz))
    except Exception as exc:  # the library raises several unrelated types on bad input
        raise IcalProblem(f"cannot expand recurring events: {exc}") from exc
    shifts = []
    for ev in events:
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
        s = _instant(dtstart.dt, tz)
        if ev.get("DTEND") is not None:
            e = _instant(ev["DTEND"].dt, tz)
        elif ev.get("DURATION") is not None:
            e = s + ev["DURATION"].dt
        elif not isinstance(dtstart.dt, datetime):
            e = _instant(dtstart.dt + timedelta(days=1), tz)
        else:
            raise IcalProblem(f"event {summary!r} has no end")
        if e <= s:
            raise IcalProblem(f"event {summary!r} ends before it starts")
        label = f"{summary} {s.astimezone(tz):%Y-%m-%d %H:%M}"
        shifts.append(Shift(cid, clinicians[cid].role, s, e, "ical", label))
    shifts.sort(key=lambda sh: sh.start)
    return shifts
