"""Who is on call: clinicians, rotations, shifts and an iCal feed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import yaml

from ivr.rules import model as m
from ivr.rules.limits import MAX_ICAL_FILE_BYTES, InputRefused, LoadTimeout, read_bounded
from ivr.rules.shape import HANDOFF_KINDS, MAX_PATTERN_TURNS, SLUG_RE, TURN_DAYS
from ivr.rules.timeutil import WEEKDAYS, fmt_local
from ivr.rules.validate.core import child
from ivr.rules.validate.escalation import EscalationSection
from ivr.rules.validate.tables import (
    CLINICIAN_KEYS,
    HANDOFF_KEYS,
    ICAL_FUTURE_DAYS,
    ICAL_KEYS,
    ICAL_PAST_DAYS,
    ON_CALL_KEYS,
    PIN_RE,
    ROTATION_KEYS,
    SHIFT_KEYS,
)


class OnCallSection(EscalationSection):
    """on_call: clinicians, rotations, shifts, an iCal feed, then (EscalationSection)
    the escalation chain."""

    def on_call(self, node: yaml.Node | None) -> m.OnCall | None:
        f = self.mapping(node, "on_call", ON_CALL_KEYS)
        if f is None:
            return None
        errors_before = len(self.c.errors)
        clinicians: dict[str, m.Clinician] = {}
        declared: set[str] = set()  # ids seen even when the entry had other errors
        for i, item in enumerate(self.seq(f.get("clinicians"), "on_call.clinicians")):
            path = child("on_call.clinicians", i)
            c = self.mapping(item, path, CLINICIAN_KEYS)
            if c is None:
                continue
            cid = self.text(c.get("id"), child(path, "id"), "a slug such as dr-cho", SLUG_RE)
            if cid is not None and cid in declared:
                self.c.error(c.get("id"), child(path, "id"), cid, "a unique clinician id",
                             f"clinician {cid!r} is defined twice")
                continue
            declared.add(cid or "")
            name = self.text(c.get("name"), child(path, "name"))
            role = self.choice(c.get("role"), child(path, "role"), m.ROLES)
            phone = self.phone(c.get("phone"), child(path, "phone"))
            pin = None
            if c.get("pin") is not None:
                pin = self.text(c.get("pin"), child(path, "pin"),
                                'a PIN of 4 to 8 digits, quoted: "4821"', PIN_RE)
            if cid and name and role and phone:
                clinicians[cid] = m.Clinician(cid, name, role, phone, pin)
        if "clinicians" in f and not clinicians and len(self.c.errors) == errors_before:
            self.c.error(f["clinicians"], "on_call.clinicians", None, "at least one clinician",
                         "no clinicians defined")
        known = "one of the clinician ids: " + ", ".join(sorted(declared - {""}))

        def clinician_ref(n: yaml.Node | None, path: str) -> str | None:
            cid = self.text(n, path, known)
            if cid is not None and cid in declared and cid not in clinicians:
                return None  # its own entry is broken and was reported there
            if cid is not None and cid not in clinicians:
                self.c.error(n, path, cid, known, f"no clinician with id {cid!r}")
                return None
            return cid

        rotations: dict[str, m.Rotation] = {}
        for i, item in enumerate(self.seq(f.get("rotations"), "on_call.rotations")):
            path = child("on_call.rotations", i)
            r = self.mapping(item, path, ROTATION_KEYS)
            if r is None:
                continue
            role = self.choice(r.get("role"), child(path, "role"), m.ROLES)
            order = []
            onode = r.get("order")
            cnodes = self.seq(onode, child(path, "order"), "a list of clinician ids")
            for j, cnode in enumerate(cnodes):
                cid = clinician_ref(cnode, child(path, f"order[{j}]"))
                if cid is not None:
                    order.append(cid)
                    if role and clinicians[cid].role != role:
                        self.c.error(cnode, child(path, f"order[{j}]"), cid,
                                     f"a clinician whose role is {role}",
                                     f"{cid!r} is a {clinicians[cid].role}, not a {role}")
            if onode is not None and not self.seq(onode, child(path, "order")):
                self.c.error(onode, child(path, "order"), None, "at least one clinician id",
                             "the rotation has no one in it")
            hnode = r.get("handoff")
            h = self.mapping(hnode, child(path, "handoff"), HANDOFF_KEYS) or {}
            at = self.time_of_day(h.get("time"), child(path, "handoff.time"))
            turns = self.handoff_turns(hnode, h, child(path, "handoff"))
            anchor = self.day(r.get("anchor"), child(path, "anchor"))
            start = self.local_datetime(r.get("start"), child(path, "start")) \
                if "start" in r else None
            if role in rotations:
                self.c.error(r.get("role"), child(path, "role"), role, "one rotation per role",
                             f"a second rotation for role {role!r}")
                continue
            if role and order and turns and at is not None and anchor and \
                    (start is not None or "start" not in r):
                rotations[role] = m.Rotation(role, tuple(order), turns[0], at, anchor,
                                             turns[1], start)
                self.handoff_nodes[role] = (h["time"], child(path, "handoff.time"))

        shifts: list[tuple[m.Shift, yaml.Node, str]] = []
        for i, item in enumerate(self.seq(f.get("shifts"), "on_call.shifts")):
            path = child("on_call.shifts", i)
            s = self.mapping(item, path, SHIFT_KEYS)
            if s is None:
                continue
            cid = clinician_ref(s.get("clinician"), child(path, "clinician"))
            start = self.local_datetime(s.get("start"), child(path, "start"))
            end = self.local_datetime(s.get("end"), child(path, "end"))
            role = self.choice(s.get("role"), child(path, "role"), m.ROLES) if "role" in s else None
            note = self.text(s.get("note"), child(path, "note")) or ""
            if start and end and end <= start:
                self.c.error(s.get("end"), child(path, "end"), s["end"].value,
                             "an end after the start", "the shift ends before it starts")
                continue
            if cid and start and end:
                shift = m.Shift(cid, role or clinicians[cid].role, start, end, "shift", note)
                shifts.append((shift, item, path))
        self.check_overlaps(shifts)

        ical_shifts: tuple[m.Shift, ...] = ()
        ical_file = None
        if "ical" in f:
            ical_shifts, ical_file = self.ical(f["ical"], clinicians)

        steps = self.escalation(f.get("escalation"), clinicians, clinician_ref)
        we = self.when_exhausted(f)
        wait = self.integer(f.get("max_caller_wait_seconds"), "on_call.max_caller_wait_seconds",
                            10, 900, 120)
        if len(self.c.errors) > errors_before:
            return None
        return m.OnCall(m.frozen_map(clinicians), m.frozen_map(rotations),
                        tuple(sorted((s for s, _, _ in shifts), key=lambda s: s.start)),
                        ical_shifts, tuple(steps), we, wait, ical_file, self.ical_source)


    def handoff_turns(self, node: yaml.Node | None, h: Mapping[str, yaml.Node], path: str
                      ) -> tuple[int | None, tuple[int, ...]] | None:
        """(weekday or None, days of each turn) from a handoff's weekday, every_days or
        pattern (exactly one of them)."""
        given = [k for k in HANDOFF_KINDS if k in h]
        if node is None or not isinstance(node, yaml.MappingNode):
            return None
        if len(given) != 1:
            self.c.error(node, path, ", ".join(given) or None,
                         "exactly one of weekday (weekly), every_days (e.g. 1: daily) or "
                         "pattern (e.g. [2, 2, 3])",
                         "a handoff needs exactly one of weekday, every_days or pattern"
                         + (f", not {' and '.join(given)}" if given else ""))
            return None
        kind = given[0]
        kpath = child(path, kind)
        if kind == "weekday":
            wd = self.choice(h["weekday"], kpath, WEEKDAYS)
            return None if wd is None else (WEEKDAYS.index(wd), (7,))
        if kind == "every_days":
            errors = len(self.c.errors)
            days = self.integer(h["every_days"], kpath, *TURN_DAYS, 0)
            return None if len(self.c.errors) > errors else (None, (days,))
        items = self.seq(h["pattern"], kpath, "a list of days per turn, e.g. [2, 2, 3]")
        errors = len(self.c.errors)
        pattern = tuple(self.integer(item, child(kpath, j), *TURN_DAYS, 0)
                        for j, item in enumerate(items))
        if len(self.c.errors) > errors:
            return None
        if not 1 <= len(pattern) <= MAX_PATTERN_TURNS:
            self.c.error(h["pattern"], kpath, len(pattern),
                         f"at least one and at most {MAX_PATTERN_TURNS} turns, e.g. [2, 2, 3]",
                         "the pattern needs at least one turn" if not pattern else
                         f"the pattern has {len(pattern)} turns")
            return None
        return None, pattern

    def check_overlaps(self, shifts: list[tuple[m.Shift, yaml.Node, str]]) -> None:
        """Two explicit shifts for one role may not overlap: who would be called?"""
        by_role: dict[str, list[tuple[m.Shift, yaml.Node, str]]] = {}
        for entry in shifts:
            by_role.setdefault(entry[0].role, []).append(entry)
        for entries in by_role.values():
            entries.sort(key=lambda e: e[0].start)
            for (a, _, apath), (b, bnode, bpath) in zip(entries, entries[1:], strict=False):
                if b.start < a.end:
                    self.c.error(bnode, bpath, f"{fmt_local(b.start, self.tz)}",
                                 f"a start at or after {fmt_local(a.end, self.tz)}",
                                 f"this {b.role} shift overlaps {apath} "
                                 f"({a.clinician_id} until {fmt_local(a.end, self.tz)})")

    def ical(self, node: yaml.Node, clinicians: Mapping[str, m.Clinician]
             ) -> tuple[tuple[m.Shift, ...], str | None]:
        from ivr.rules.ical import IcalProblem, read_ical_shifts

        f = self.mapping(node, "on_call.ical", ICAL_KEYS) or {}
        rel = self.text(f.get("file"), "on_call.ical.file", "a path to an .ics file")
        prop = self.text(f.get("clinician_from"), "on_call.ical.clinician_from",
                         "an iCal property name such as SUMMARY") or "SUMMARY"
        if rel is None:
            return (), None
        fnode = f["file"]
        try:
            data = read_bounded(self.base_dir / rel, MAX_ICAL_FILE_BYTES)
        except InputRefused as exc:
            self.c.error(fnode, "on_call.ical.file", rel,
                         f"a readable .ics file next to the YAML, a regular file of at most "
                         f"{MAX_ICAL_FILE_BYTES >> 20} MiB", f"cannot read {rel!r}: {exc}")
            return (), None
        self.ical_bytes = data
        start = self.now - timedelta(days=ICAL_PAST_DAYS)
        end = self.now + timedelta(days=ICAL_FUTURE_DAYS)
        try:
            shifts = read_ical_shifts(data, self.tz, clinicians, start, end, prop.upper(),
                                      self.deadline)
        except IcalProblem as exc:
            self.c.error(fnode, "on_call.ical.file", rel, "a valid iCalendar file", str(exc))
            return (), None
        except LoadTimeout as exc:
            exc.locate(self.c.file, fnode.start_mark.line + 1, fnode.start_mark.column + 1,
                       "on_call.ical.file")
            raise
        entries = [(s, f["file"], f"on_call.ical ({s.label})") for s in shifts]
        self.check_overlaps(entries)
        self.ical_source = m.IcalSource(data, self.tz.key, prop.upper(),
                                        tuple(clinicians.values()))
        return tuple(shifts), rel
