"""Checks of a whole built practice: on-call coverage gaps and DST clock changes."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import yaml

from ivr.rules import model as m
from ivr.rules.timeutil import clock_change_days, fmt_local, local_instant, wall_time_note
from ivr.rules.validate.core import Collector, Reader
from ivr.rules.validate.tables import CLOCK_CHANGE_DAYS, COVERAGE_DAYS


def coverage_warnings(practice: m.Practice, col: Collector, node: yaml.Node | None,
                      now: datetime) -> None:
    """Warn about stretches in the next 30 days when an escalated-to role has nobody."""
    from ivr.rules.oncall import rotation_begins, timeline

    roles = {t.role for s in practice.on_call.escalation for t in s.targets if t.role}
    for role, cid, start, end, _src in timeline(practice, now, now + timedelta(days=COVERAGE_DAYS)):
        if role in roles and cid is None:
            span = f"{fmt_local(start, practice.tz)} to {fmt_local(end, practice.tz)}"
            rot = practice.on_call.rotations.get(role)
            why = ""
            if rot is not None and end <= (begins := rotation_begins(rot, practice.tz)):
                why = f" (before the {role} rotation starts, {fmt_local(begins, practice.tz)})"
            col.warn(node, "on_call", span, f"a {role} on call at all times",
                     f"no {role} on call from {span}{why}")


def clock_change_warnings(practice: m.Practice, builder: Reader, now: datetime) -> None:
    """Warn of opening hours and handoffs that a DST change in the next year skips or
    doubles, with the instant taken (the first such date only)."""
    from ivr.rules.oncall import _turn
    from ivr.rules.oncall import rotation_begins as oncall_begins

    tz = practice.tz
    days = clock_change_days(tz, now.astimezone(tz).date(), CLOCK_CHANGE_DAYS)

    def check(node: yaml.Node, path: str, day: date, minute: int) -> bool:
        wall = datetime.combine(day, datetime.min.time()) + timedelta(minutes=minute)
        note = wall_time_note(wall, tz)
        if note is not None:
            builder.c.warn(node, path, f"{wall:%H:%M}", "a time of day clear of the "
                           "clock change (e.g. 03:00 instead of 02:30)", note)
        return note is not None

    for weekday, p, node, path in builder.period_nodes:
        for day in days:
            ends = [] if p.crosses_midnight else [p.end]
            if p.crosses_midnight and day.weekday() == (weekday + 1) % 7:
                if check(node, path, day, p.end):
                    break
            if day.weekday() == weekday and any(check(node, path, day, mm)
                                                for mm in (p.start, *ends)):
                break
    for role, (node, path) in builder.handoff_nodes.items():
        rot = practice.on_call.rotations[role]
        for day in days:
            t = local_instant(day, rot.handoff_minute, tz)
            if t >= oncall_begins(rot, tz) and _turn(rot, tz, t)[1] == day \
                    and check(node, path, day, rot.handoff_minute):
                break
