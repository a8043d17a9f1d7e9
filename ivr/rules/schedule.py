"""Pure schedule engine: is a practice open at an instant, why, and until when.

Precedence, highest first (the first layer that covers the instant decides):
  1. manual overrides (passed in by the caller; the last one in the tuple wins)
  2. overrides written in the rules (the last one listed wins)
  3. holidays (public holidays of the country/subdivision and the practice's own dates;
     where both cover an instant it is closed)
  4. weekly opening hours
  5. closed
All wall times are the practice's local time; see timeutil.local_instant for how the
repeated and the skipped hour of a DST change are mapped to instants.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

import holidays as holidays_pkg

from ivr.rules.model import Override, Practice
from ivr.rules.timeutil import MINUTES_PER_DAY, local_instant, require_aware

SEARCH_DAYS = 400  # how far ahead next_change/next_opening look before giving up
_CHUNK_DAYS = 4


@dataclass(frozen=True)
class PracticeState:
    """The state at an instant; `next_change` is when kind/openness/reason next differ."""

    kind: str  # 'open' | 'closed' | 'holiday' | 'override'
    is_open: bool
    reason: str
    next_change: datetime | None


@dataclass(frozen=True)
class HolidayWindow:
    name: str
    start: datetime
    end: datetime


@lru_cache(maxsize=4096)
def _public_holidays(country: str, subdiv: str | None, observed: bool, year: int
                     ) -> dict[date, str]:
    """The `holidays` package's calendar for one year (cached: it is slow to build)."""
    cal = holidays_pkg.country_holidays(country, subdiv=subdiv, years=year, observed=observed)
    return dict(cal.items())


def public_holiday_names(country: str, subdiv: str | None, years: range) -> frozenset[str]:
    """Every public holiday name of a calendar over `years`, without '(observed)'."""
    names: set[str] = set()
    for year in years:
        for name in _public_holidays(country, subdiv, True, year).values():
            names.update(_base_name(p) for p in name.split(";"))
    return frozenset(names)


def _base_name(part: str) -> str:
    return part.strip().replace(" (observed)", "")


def _public_name(practice: Practice, day: date) -> str | None:
    """The public holiday on `day` that closes the practice (`only`, minus `exclude`)."""
    h = practice.holidays
    if h.country is None:
        return None
    name = _public_holidays(h.country, h.subdivision, h.observed, day.year).get(day)
    if name is None:
        return None
    # The package joins two holidays on one date with '; ' and marks observed ones.
    parts = [p.strip() for p in name.split(";")]
    kept = [p for p in parts
            if _base_name(p) not in h.exclude and p not in h.exclude
            and (h.only is None or _base_name(p) in h.only or p in h.only)]
    return "; ".join(kept) or None


def holiday_windows(practice: Practice, day: date) -> tuple[HolidayWindow, ...]:
    """The parts of `day` the practice is closed for holidays, in order.

    Public holidays and the practice's own dates add up: where two overlap the day
    stays closed through both (the most closed wins), so a partial closing of the
    practice's own never reopens a public holiday.
    """
    tz = practice.tz
    found: list[HolidayWindow] = []
    name = _public_name(practice, day)
    if name is not None:
        found.append(HolidayWindow(name, local_instant(day, 0, tz),
                                   local_instant(day, MINUTES_PER_DAY, tz)))
    for ch in practice.holidays.custom:
        if ch.applies_to(day):
            end_min = MINUTES_PER_DAY if ch.closed_until is None else ch.closed_until
            found.append(HolidayWindow(ch.name, local_instant(day, ch.closed_from or 0, tz),
                                       local_instant(day, end_min, tz)))
    found.sort(key=lambda w: w.start)
    merged: list[HolidayWindow] = []
    for w in found:
        last = merged[-1] if merged else None
        if last is not None and w.start <= last.end:
            names = last.name if w.name in last.name.split("; ") else f"{last.name}; {w.name}"
            merged[-1] = HolidayWindow(names, last.start, max(last.end, w.end))
        else:
            merged.append(w)
    return tuple(merged)


def _covers(start: datetime, end: datetime | None, t: datetime) -> bool:
    return start <= t and (end is None or t < end)


def _point(practice: Practice, t: datetime, manual: tuple[Override, ...]
           ) -> tuple[str, bool, str]:
    """(kind, is_open, reason) at instant t, by the precedence in the module docstring."""
    for ov in reversed(manual):
        if _covers(ov.start, ov.end, t):
            return "override", ov.is_open, f"manual override: {ov.reason}"
    for ov in reversed(practice.overrides):
        if _covers(ov.start, ov.end, t):
            return "override", ov.is_open, f"override: {ov.reason}"
    local_day = t.astimezone(practice.tz).date()
    for day in (local_day, local_day - timedelta(days=1), local_day + timedelta(days=1)):
        # Neighbouring days too: local_instant can move a window's edge across midnight.
        for hw in holiday_windows(practice, day):
            if hw.start <= t < hw.end:
                return "holiday", False, f"holiday: {hw.name}"
    for day in (local_day - timedelta(days=1), local_day):
        for p in practice.hours[day.weekday()]:
            start = local_instant(day, p.start, practice.tz)
            end_min = p.end + (MINUTES_PER_DAY if p.crosses_midnight else 0)
            if start <= t < local_instant(day, end_min, practice.tz):
                return "open", True, "office hours"
    return "closed", False, "outside office hours"


def _day_boundaries(practice: Practice, day: date) -> Iterator[datetime]:
    """Every instant on local `day` at which a holiday or an opening period may begin or end."""
    tz = practice.tz
    yield local_instant(day, 0, tz)
    for hw in holiday_windows(practice, day):
        yield hw.start
        yield hw.end
    for p in practice.hours[day.weekday()]:
        yield local_instant(day, p.start, tz)
        yield local_instant(day, p.end + (MINUTES_PER_DAY if p.crosses_midnight else 0), tz)


def _override_boundaries(overrides: Iterable[Override]) -> list[datetime]:
    out = []
    for ov in overrides:
        out.append(ov.start)
        if ov.end is not None:
            out.append(ov.end)
    return out


def _next_change(practice: Practice, t: datetime, manual: tuple[Override, ...],
                 current: tuple[str, bool, str]) -> datetime | None:
    """The first candidate boundary after t where the state differs from `current`."""
    fixed = sorted(b for b in _override_boundaries(practice.overrides + manual) if b > t)
    first_day = t.astimezone(practice.tz).date() - timedelta(days=1)
    for chunk in range(0, SEARCH_DAYS, _CHUNK_DAYS):
        lo = first_day + timedelta(days=chunk)
        hi = lo + timedelta(days=_CHUNK_DAYS)
        hi_instant = local_instant(hi, 0, practice.tz)
        candidates = {b for d in range(_CHUNK_DAYS)
                      for b in _day_boundaries(practice, lo + timedelta(days=d)) if b > t}
        candidates.update(b for b in fixed if b < hi_instant)
        for b in sorted(candidates):
            if _point(practice, b, manual) != current:
                return b
        fixed = [b for b in fixed if b >= hi_instant]
        t = max(t, hi_instant - timedelta(microseconds=1))
    return None


def state_at(practice: Practice, instant: datetime,
             manual_overrides: tuple[Override, ...] = ()) -> PracticeState:
    """The practice's state at `instant` (aware) and when it next changes."""
    t = require_aware(instant)
    manual = tuple(manual_overrides)
    current = _point(practice, t, manual)
    return PracticeState(current[0], current[1], current[2],
                         _next_change(practice, t, manual, current))


def next_opening(practice: Practice, instant: datetime,
                 manual_overrides: tuple[Override, ...] = ()) -> datetime | None:
    """The first instant at or after `instant` when the practice is open (None if never)."""
    t = require_aware(instant)
    for _ in range(SEARCH_DAYS * 4):
        st = state_at(practice, t, manual_overrides)
        if st.is_open:
            return t
        if st.next_change is None:
            return None
        t = st.next_change
    return None
