"""Whom to call, in which order: on_call.escalation and on_call.when_exhausted."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import yaml

from ivr.rules import model as m
from ivr.rules.shape import TARGET_KINDS
from ivr.rules.validate.core import Reader, child
from ivr.rules.validate.tables import DEFAULT_RING_SECONDS, EXHAUSTED_KEYS, STEP_KEYS, TARGET_KEYS

ClinicianRef = Callable[[yaml.Node | None, str], str | None]


class EscalationSection(Reader):
    """on_call.escalation and on_call.when_exhausted: whom to call, in which order."""

    def escalation(self, enode: yaml.Node | None, clinicians: Mapping[str, m.Clinician],
                   clinician_ref: ClinicianRef) -> list[m.EscalationStep]:
        """The steps of the chain; clinician_ref checks a clinician id (on_call.py)."""

        def target(item: yaml.Node, path: str, s: dict[str, yaml.Node],
                   what: str) -> m.Target | None:
            """One role, one clinician or the others of a role, by exactly one key of `s`."""
            if sum(k in s for k in TARGET_KINDS) != 1:
                self.c.error(item, path, None, f"exactly one of {what}",
                             "an escalation step names whom to call by role, by clinician, "
                             "as the others of a role or (together) by several of them")
                return None
            if "clinician" in s:
                cid = clinician_ref(s.get("clinician"), child(path, "clinician"))
                return m.Target(None, cid) if cid else None
            key = "role" if "role" in s else "others_of"
            role = self.choice(s.get(key), child(path, key), m.ROLES)
            if role is not None and not any(c.role == role for c in clinicians.values()):
                self.c.error(s.get(key), child(path, key), role,
                             "a role that at least one clinician has", f"no clinician is a {role}")
                return None
            if role is None:
                return None
            return m.Target(role, None) if key == "role" else m.Target(None, None, role)

        steps = []
        for i, item in enumerate(self.seq(enode, "on_call.escalation")):
            path = child("on_call.escalation", i)
            s = self.mapping(item, path, STEP_KEYS)
            if s is None:
                continue
            ring = self.integer(s.get("ring_seconds"), child(path, "ring_seconds"), 5, 120,
                                DEFAULT_RING_SECONDS)
            attempts = self.integer(s.get("attempts"), child(path, "attempts"), 1, 10, 1)
            if "together" not in s:
                one = target(item, path, s,
                             "'role', 'clinician', 'others_of' or 'together'")
                if one is not None:
                    steps.append(m.EscalationStep(one.role, one.clinician_id, ring, attempts,
                                                  others_of=one.others_of))
                continue
            if any(k in s for k in TARGET_KINDS):
                self.c.error(item, path, None,
                             "exactly one of 'role', 'clinician', 'others_of' or 'together'",
                             "a 'together' step lists its roles and clinicians inside 'together'")
                continue
            tpath = child(path, "together")
            errors_in_step = len(self.c.errors)
            group: list[m.Target] = []
            for j, entry in enumerate(self.seq(s["together"], tpath,
                                               "a list of {role: ...}, {clinician: ...} "
                                               "or {others_of: ...}")):
                epath = child(tpath, j)
                e = self.mapping(entry, epath, TARGET_KEYS)
                one = target(entry, epath, e, "'role', 'clinician' or 'others_of'") \
                    if e is not None else None
                if one is None:
                    continue
                if one in group:
                    self.c.error(entry, epath, one.role or one.clinician_id or one.others_of,
                                 "each role or clinician once", "listed twice in this step")
                    continue
                group.append(one)
            several = len(group) >= 2 or any(t.others_of for t in group)
            if not several and len(self.c.errors) == errors_in_step:
                self.c.error(s["together"], tpath, None, "two or more roles or clinicians",
                             "a 'together' step rings several at once; for one, use "
                             "'role' or 'clinician'")
                continue
            steps.append(m.EscalationStep(None, None, ring, attempts, tuple(group)))
        if enode is not None and not self.seq(enode, "on_call.escalation"):
            self.c.error(enode, "on_call.escalation", None, "at least one step",
                         "the escalation chain is empty")
        return steps

    def when_exhausted(self, f: Mapping[str, yaml.Node]) -> m.WhenExhausted:
        we = m.WhenExhausted()
        if "when_exhausted" in f:
            w = self.mapping(f["when_exhausted"], "on_call.when_exhausted", EXHAUSTED_KEYS) or {}
            action = self.choice(w.get("action"), "on_call.when_exhausted.action",
                                 m.EXHAUSTED_ACTIONS)
            renotify = self.integer(w.get("renotify_minutes"),
                                    "on_call.when_exhausted.renotify_minutes", 1, 120, 5)
            per_person = self.integer(w.get("attempts_per_person"),
                                      "on_call.when_exhausted.attempts_per_person", 1, 20, 1)
            limit = (self.integer(w.get("max_attempts"), "on_call.when_exhausted.max_attempts",
                                  1, 200, 0) or None) if "max_attempts" in w else None
            we = m.WhenExhausted(action or we.action, renotify, per_person or 1, limit)
        return we
