"""The entry point: read, parse and validate one YAML file into a Practice."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml

from ivr.rules import model as m
from ivr.rules.limits import (
    MAX_DEPTH,
    MAX_RULES_FILE_BYTES,
    UNLIMITED,
    Deadline,
    InputRefused,
    read_bounded,
)
from ivr.rules.validate.callflow import CallFlowSection
from ivr.rules.validate.checks import clock_change_warnings, coverage_warnings
from ivr.rules.validate.core import Collector
from ivr.rules.validate.delivery import DeliverySection
from ivr.rules.validate.hours import HoursSection
from ivr.rules.validate.on_call import OnCallSection
from ivr.rules.validate.practice import PracticeSection
from ivr.rules.validate.tables import TOP_KEYS
from ivr.rules.yamlload import TooDeep, check_limits, compose


class Builder(PracticeSection, HoursSection, CallFlowSection, OnCallSection,
              DeliverySection):
    """Reads one practice file's node tree; every accessor records errors instead of raising."""

    def build(self, root: yaml.Node) -> m.Practice | None:
        # Counted before the top-level keys: a missing or misspelt 'practice' is an
        # error there, and leaves no practice details to build from.
        errors_before = len(self.c.errors)
        top = self.mapping(root, "", TOP_KEYS)
        if top is None:
            return None
        info = self.practice_info(top.get("practice"))
        hours = self.hours(top.get("hours"))
        hol = self.holidays(top.get("holidays"), info.get("country"), info.get("subdivision"))
        overrides = self.overrides(top.get("overrides"))
        prompts = self.prompts(top.get("prompts"))
        intake = self.intake(top.get("intake"))
        menu, menu_prompts = self.triage(top.get("triage"))
        for tag, table in menu_prompts.items():
            prompts[tag].update(table)
        overflow = self.overflow(top.get("overflow"))
        on_call = self.on_call(top.get("on_call"))
        named = None if on_call is None else frozenset(
            {c.phone for c in on_call.clinicians.values()} | set(overflow.bridge_to))
        fallback = self.phones(top.get("fallback_numbers"), "fallback_numbers", among=named)
        delivery = self.delivery(top.get("delivery"))
        retention = self.retention(top.get("retention"))
        red_flags = self.red_flags(top.get("red_flags"))
        if len(self.c.errors) > errors_before or menu is None or on_call is None:
            return None
        return m.Practice(
            id=info["id"], name=info["name"], timezone=info["timezone"], tz=self.tz,
            country=info["country"], subdivision=info.get("subdivision"),
            language=self.language, dids=info["dids"],
            forwarding_numbers=info["forwarding_numbers"], hours=hours, holidays=hol,
            overrides=overrides, prompts=m.frozen_map(prompts[self.language]), intake=intake,
            menu=menu, languages=self.offered,
            prompts_by_language=m.frozen_map({t: m.frozen_map(p) for t, p in prompts.items()}),
            overflow=overflow, on_call=on_call, fallback_numbers=fallback, delivery=delivery,
            retention=retention, red_flags=red_flags, source_file=self.c.file,
        )



def build_file(path: Path, display: str, now: datetime, deadline: Deadline = UNLIMITED
               ) -> tuple[m.Practice | None, Builder, bytes]:
    """Read, parse and validate one YAML file."""
    col = Collector(display)
    builder = Builder(col, path.parent, now, deadline)
    expected = f"a readable UTF-8 YAML file of at most {MAX_RULES_FILE_BYTES >> 20} MiB"
    try:
        raw = read_bounded(path, MAX_RULES_FILE_BYTES)
    except InputRefused as exc:
        col.error(None, "", display, expected, f"cannot read file: {exc}")
        return None, builder, b""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        col.errors.append(m.Issue(display, line, column, "", None, expected,
                                  f"cannot read file: not UTF-8 ({exc.reason})"))
        return None, builder, raw
    try:
        root = compose(text, display)
    except TooDeep as exc:
        mark = exc.problem_mark
        line, colno = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        col.errors.append(m.Issue(display, line, colno, "", None,
                                  f"at most {MAX_DEPTH} levels of nesting", str(exc.problem)))
        return None, builder, raw
    except yaml.reader.ReaderError as exc:
        # A control character such as NUL: PyYAML gives its offset, not a mark.
        before = text[:exc.position]
        line, colno = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        col.errors.append(m.Issue(display, line, colno, "", f"#x{exc.character:04x}"
                                  if isinstance(exc.character, int) else None,
                                  "printable text", f"YAML error: {exc.reason}"))
        return None, builder, raw
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, colno = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        col.errors.append(m.Issue(display, line, colno, "", None, "valid YAML",
                                  f"YAML syntax error: {exc.problem or exc}"))
        return None, builder, raw
    except yaml.YAMLError as exc:
        col.error(None, "", None, "valid YAML", f"YAML error: {exc}")
        return None, builder, raw
    if root is None:
        col.error(None, "", None, "a practice mapping", "the file is empty")
        return None, builder, raw
    findings = check_limits(root, deadline.check)
    if findings:  # the validator would read what is over a limit: stop here
        for fd in findings:
            col.error(fd.node, fd.key, fd.value, fd.expected, fd.message)
        return None, builder, raw
    deadline.check()
    practice = builder.build(root)
    if practice is not None:
        coverage_warnings(practice, col, _find(root, "on_call"), now)
        clock_change_warnings(practice, builder, now)
    return practice, builder, raw


def _find(root: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(root, yaml.MappingNode):
        for k, _ in root.value:
            if getattr(k, "value", None) == key:
                return k
    return None
