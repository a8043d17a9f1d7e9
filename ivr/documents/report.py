"""Morning report: which night (pure schedule maths), and the report of its calls -> JSON.

A night is a closed stretch of the practice's schedule that ends at a "morning opening":
night D ends at the first opening at or after local midnight between D and D+1, and begins
at the last closing before that. Nights are named after the evening before that morning
(date of the opening minus one day), so a stretch has one name however it is asked for:
Wednesday 19:00 -> Friday 08:00 over Thanksgiving is night 2026-11-26, and asking for
2026-11-25 finds the same one. Lunch breaks and other closures inside a day are no night.

A report covers more than its night: everything from the end of the previous night (the
previous morning opening) to the end of this one, so calls taken while the office was open
(overflow) are reported too, and every call is in exactly one report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from ivr.documents.note import NEEDS_ACTION_TEXT, Note, build_note, fmt_human
from ivr.rules.decision import Route
from ivr.rules.model import Override, Practice
from ivr.rules.schedule import next_opening, state_at
from ivr.rules.timeutil import local_instant, require_aware

REPORT_VERSION = 1
LOOKBACK_DAYS = 31  # how far back the previous morning opening is looked for
# A clinician's own call (ivr.flows.clinician_line) is no patient message: it is listed
# apart, and what it did shows on the patients' notes (acknowledged ... via clinician-line).
ROUTE_CLINICIAN_LINE = Route.CLINICIAN_LINE


@dataclass(frozen=True)
class NightWindow:
    night: date  # the canonical name: the opening's local date minus one day
    closing: datetime | None  # when the closed stretch began (None: it never closed)
    opening: datetime  # the morning opening that ends it (the report is due then)
    covers_from: datetime  # the previous morning opening: the report covers [from, opening)

    def contains(self, instant: datetime) -> bool:
        return self.covers_from <= instant < self.opening

    def to_json(self, tz: Any) -> dict[str, Any]:
        def both(value: datetime | None) -> dict[str, str | None]:
            return {"utc": value.isoformat() if value else None,
                    "local": value.astimezone(tz).isoformat(timespec="minutes")
                    if value else None}

        return {"night": self.night.isoformat(), "closing": both(self.closing),
                "opening": both(self.opening), "covers_from": both(self.covers_from)}


def _morning_opening(practice: Practice, day: date,
                     manual: tuple[Override, ...]) -> datetime | None:
    """The first opening at or after local midnight starting `day`."""
    return next_opening(practice, local_instant(day, 0, practice.tz), manual)


def _closing_before(practice: Practice, start: datetime, opening: datetime,
                    manual: tuple[Override, ...]) -> datetime | None:
    """The last open -> closed change in [start, opening); None if it never closed there."""
    t, closing, was_open = start, None, None
    while t < opening:
        st = state_at(practice, t, manual)
        if was_open and not st.is_open:
            closing = t
        elif was_open is None and not st.is_open:
            closing = t  # closed from the very start of the span
        was_open = st.is_open
        if st.next_change is None:
            break
        t = st.next_change
    return closing


def night_window(practice: Practice, night: date, manual: Iterable[Override] = (),
                 previous_end: datetime | None = None) -> NightWindow | None:
    """The night named (or containing the evening of) `night`; None if it never reopens.

    `previous_end` (the end of the previous report, when one exists) replaces the schedule's
    previous morning opening as the start of what the report covers, so a change of rules
    or overrides between two reports leaves neither a gap nor an overlap.
    """
    manual = tuple(manual)
    opening = _morning_opening(practice, night + timedelta(days=1), manual)
    if opening is None:
        return None
    canonical = opening.astimezone(practice.tz).date() - timedelta(days=1)
    covers_from = previous_end
    if covers_from is None or covers_from >= opening:
        covers_from = None
        for back in range(0, LOOKBACK_DAYS):
            earlier = _morning_opening(practice, canonical - timedelta(days=back), manual)
            if earlier is not None and earlier < opening:
                covers_from = earlier
                break
        if covers_from is None:
            covers_from = opening - timedelta(days=LOOKBACK_DAYS)
    closing = _closing_before(practice, max(covers_from, opening - timedelta(
        days=LOOKBACK_DAYS)), opening, manual)
    return NightWindow(canonical, closing, opening, covers_from)


def night_of(practice: Practice, instant: datetime,
             manual: Iterable[Override] = ()) -> NightWindow | None:
    """The night whose report covers `instant`."""
    t = require_aware(instant)
    manual = tuple(manual)
    day = t.astimezone(practice.tz).date() - timedelta(days=2)
    for _ in range(LOOKBACK_DAYS + 3):
        window = night_window(practice, day, manual)
        if window is None:
            return None
        if window.opening > t:
            return window
        day = max(day + timedelta(days=1), window.night + timedelta(days=1))
    return None


def due_nights(practice: Practice, now: datetime, manual: Iterable[Override] = (), *,
               after: datetime, max_days: int = 7) -> list[NightWindow]:
    """Nights whose opening is in (after, now], oldest first (at most `max_days` back)."""
    now = require_aware(now)
    manual = tuple(manual)
    after = max(require_aware(after), now - timedelta(days=max_days))
    day = after.astimezone(practice.tz).date() - timedelta(days=1)
    last = now.astimezone(practice.tz).date()
    out: list[NightWindow] = []
    while day <= last:
        window = night_window(practice, day, manual)
        if window is None:
            break
        if window.opening > now:
            break
        if window.opening > after and (not out or out[-1].night != window.night):
            out.append(window)
        day = max(day + timedelta(days=1), window.night + timedelta(days=1))
    return out


# --- the report --------------------------------------------------------------------------

@dataclass(frozen=True)
class ClinicianLineCall:
    """A clinician's own call to hear and acknowledge messages (no patient data)."""

    call_id: str
    started_at: datetime
    clinician_id: str | None
    acknowledged: int  # call-backs this call acknowledged

    def to_json(self, tz: Any) -> dict[str, Any]:
        return {"call_id": self.call_id, "started_at": self.started_at.isoformat(),
                "started_local": self.started_at.astimezone(tz).isoformat(
                    timespec="minutes"),
                "clinician_id": self.clinician_id, "acknowledged": self.acknowledged}


def clinician_line_call(call: Mapping[str, Any]) -> ClinicianLineCall | None:
    """The clinician-line summary of a call record (ivr.records.calls.show_call), if it is one."""
    if call.get("route") != ROUTE_CLINICIAN_LINE:
        return None
    started = build_note(call, None).started_at  # the note's own reading of the time
    events = [e for e in call.get("timeline") or [] if isinstance(e, Mapping)]
    who = next((e.get("detail", {}).get("clinician") for e in events
                if e.get("kind") == "route.changed" and isinstance(e.get("detail"), Mapping)),
               None)
    acked = sum(1 for e in events if e.get("kind") == "clinician.acknowledged")
    return ClinicianLineCall(str(call.get("id", "")), started, who, acked)


@dataclass(frozen=True)
class Report:
    practice_id: str
    practice_name: str
    tz: Any
    window: NightWindow
    generated_at: datetime
    notes: tuple[Note, ...]  # every patient call, in time order
    clinician_line: tuple[ClinicianLineCall, ...] = ()  # clinicians' own calls

    @property
    def needs_action(self) -> tuple[Note, ...]:
        """Calls someone must act on, most pressing first, then oldest first."""
        return tuple(sorted((n for n in self.notes if n.needs_action),
                            key=lambda n: (n.needs_action_rank, n.started_at)))

    @property
    def by_disposition(self) -> dict[str, int]:
        return dict(sorted(Counter(n.disposition or "none" for n in self.notes).items()))

    @property
    def by_outcome(self) -> dict[str, int]:
        return dict(sorted(Counter(n.outcome for n in self.notes).items()))

    @property
    def by_route(self) -> dict[str, int]:
        return dict(sorted(Counter(n.route or "none" for n in self.notes).items()))

    @property
    def document_id(self) -> str:
        return f"{self.practice_id}:{self.window.night.isoformat()}"

    @property
    def preliminary(self) -> bool:
        """Made before the office opened again: calls later in the night are not in it."""
        return self.generated_at < self.window.opening

    @property
    def title(self) -> str:
        title = f"After-hours report, night of {self.window.night.strftime('%a %b %d, %Y')}"
        return title + (" - PRELIMINARY, the night is not over" if self.preliminary else "")

    def period_text(self) -> str:
        w = self.window
        night = (f"Closed {fmt_human(w.closing, self.tz)} until {fmt_human(w.opening, self.tz)}"
                 if w.closing else f"No closing before {fmt_human(w.opening, self.tz)}")
        return f"{night}; calls since {fmt_human(w.covers_from, self.tz)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "morning_report", "version": REPORT_VERSION,
            "id": self.document_id,
            "practice": {"id": self.practice_id, "name": self.practice_name,
                         "timezone": self.tz.key},
            "window": self.window.to_json(self.tz),
            "generated_at": self.generated_at.isoformat(),
            "preliminary": self.preliminary,
            "counts": {"calls": len(self.notes), "needs_action": len(self.needs_action),
                       "by_disposition": self.by_disposition, "by_outcome": self.by_outcome,
                       "by_route": self.by_route,
                       "clinician_line_calls": len(self.clinician_line)},
            "needs_action": [{"call_id": n.call_id,
                              "reasons": [{"kind": k, "text": NEEDS_ACTION_TEXT[k]}
                                          for k in n.needs_action],
                              "summary": n.summary} for n in self.needs_action],
            "calls": [n.to_json() for n in self.notes],
            "clinician_line_calls": [c.to_json(self.tz) for c in self.clinician_line],
        }


def build_report(practice: Practice, window: NightWindow,
                 calls: Iterable[Mapping[str, Any]], generated_at: datetime) -> Report:
    """The report of the calls in the window (calls outside it are left out); clinicians'
    own calls are listed apart from the patient calls."""
    notes: list[Note] = []
    lines: list[ClinicianLineCall] = []
    for call in calls:
        line = clinician_line_call(call)
        if line is None:
            notes.append(build_note(call, practice))
        elif window.contains(line.started_at):
            lines.append(line)
    notes = [n for n in notes if window.contains(n.started_at)]
    notes.sort(key=lambda n: (n.started_at, n.call_id))
    lines.sort(key=lambda c: (c.started_at, c.call_id))
    return Report(practice.id, practice.name, practice.tz, window,
                  require_aware(generated_at), tuple(notes), tuple(lines))
