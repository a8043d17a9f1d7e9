"""Located errors and the generic accessors every section of the validator reads with."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import yaml

from ivr.rules import model as m
from ivr.rules.limits import MAX_INT_DIGITS, MAX_YEAR, MIN_YEAR, UNLIMITED, Deadline
from ivr.rules.timeutil import MINUTES_PER_DAY, UTC, local_naive_to_instant, wall_time_note
from ivr.rules.validate.tables import (
    DATE_RE,
    DATETIME_RE,
    EXPECT_DATETIME,
    EXPECT_TIME,
    EXPECT_YEARS,
    TIME_RE,
)
from ivr.rules.yamlload import BOOL_TAG, INT_RE, INT_TAG, NULL_TAG
from ivr.texts import DEFAULT_LANGUAGE


@dataclass
class Collector:
    """Accumulates errors and warnings for one file."""

    file: str
    errors: list[m.Issue] = field(default_factory=list)
    warnings: list[m.Issue] = field(default_factory=list)

    def error(self, node: yaml.Node | None, key: str, value: Any, expected: str, msg: str) -> None:
        self.errors.append(self._issue(node, key, value, expected, msg, "error"))

    def warn(self, node: yaml.Node | None, key: str, value: Any, expected: str, msg: str) -> None:
        self.warnings.append(self._issue(node, key, value, expected, msg, "warning"))

    def _issue(self, node: yaml.Node | None, key: str, value: Any, expected: str, msg: str,
               severity: str) -> m.Issue:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        return m.Issue(self.file, line, col, key, value, expected, msg, severity)


def shown(node: yaml.Node) -> str:
    """How a bad value is quoted in a message."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == NULL_TAG:
        return "an empty value"
    return repr(node.value)


def child(path: str, key: str | int) -> str:
    """The key path of a child: practice.dids[0], on_call.escalation[1].role."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Reader:
    """The state of reading one practice file and the generic accessors: each reads one
    node and records an error (never raises) when it is not what is expected.

    Each section of the rules is a subclass of this in its own module; builder.Builder
    combines them.
    """

    def __init__(self, col: Collector, base_dir: Path, now: datetime,
                 deadline: Deadline = UNLIMITED) -> None:
        self.c = col
        self.base_dir = base_dir
        self.now = now
        self.deadline = deadline
        self.country = "US"
        self.language = DEFAULT_LANGUAGE  # practice.language, once read
        self.languages: tuple[str, ...] = ()  # practice.languages, the default first
        self.tz: ZoneInfo = ZoneInfo("UTC")
        self.numbers: list[tuple[str, str, yaml.Node, str]] = []  # (e164, kind, node, path)
        self.ical_bytes = b""
        self.ical_source: m.IcalSource | None = None
        # Wall times that repeat (weekday, period, node, path; role -> node, path): a DST
        # change may skip or double them, checked once the practice is built.
        self.period_nodes: list[tuple[int, m.Period, yaml.Node, str]] = []
        self.handoff_nodes: dict[str, tuple[yaml.Node, str]] = {}


    # ---- generic accessors -------------------------------------------------------------
    def mapping(self, node: yaml.Node | None, path: str, keys: Mapping[str, bool]
                ) -> dict[str, yaml.Node] | None:
        """The children of a mapping node; reports unknown, duplicate and missing keys."""
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            self.c.error(node, path, shown(node), "a mapping with keys: " + ", ".join(keys),
                         f"{shown(node)} is not a mapping")
            return None
        out: dict[str, yaml.Node] = {}
        for knode, vnode in node.value:
            name = str(knode.value) if isinstance(knode, yaml.ScalarNode) else "?"
            kpath = child(path, name)
            if name not in keys:
                self.c.error(knode, kpath, name, "one of: " + ", ".join(keys),
                             f"unknown key {name!r}")
                continue
            if name in out:
                self.c.error(knode, kpath, name, "each key once", f"duplicate key {name!r}")
                continue
            out[name] = vnode
        for name, required in keys.items():
            if required and name not in out:
                self.c.error(node, child(path, name), None, f"a value for {name!r}",
                             f"missing required key {name!r}")
        return out

    def seq(self, node: yaml.Node | None, path: str, expected: str = "a list"
            ) -> list[yaml.Node]:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.c.error(node, path, shown(node), expected, f"{shown(node)} is not a list")
            return []
        return list(node.value)

    def text(self, node: yaml.Node | None, path: str, expected: str = "a string",
             pattern: re.Pattern[str] | None = None) -> str | None:
        """A scalar's source text (so 10:00, no, +1617... are read exactly as written)."""
        if node is None:
            return None
        if not isinstance(node, yaml.ScalarNode) or node.tag == NULL_TAG:
            self.c.error(node, path, shown(node), expected, f"{shown(node)} is not a string")
            return None
        value = str(node.value)
        if pattern is not None and not pattern.match(value):
            self.c.error(node, path, value, expected, f"{value!r} is not valid here")
            return None
        return value

    def choice(self, node: yaml.Node | None, path: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(node, path, "one of: " + ", ".join(choices))
        if value is not None and value not in choices:
            self.c.error(node, path, value, "one of: " + ", ".join(choices),
                         f"{value!r} is not a known value")
            return None
        return value

    def integer(self, node: yaml.Node | None, path: str, lo: int, hi: int, default: int) -> int:
        if node is None:
            return default
        expected = f"a whole number from {lo} to {hi}"
        if not isinstance(node, yaml.ScalarNode) or node.tag != INT_TAG \
                or not INT_RE.match(str(node.value)) \
                or len(str(node.value).lstrip("+-")) > MAX_INT_DIGITS:
            # check_limits reports explicit !!int tags and long numbers first; this
            # keeps int() from ever raising should a node reach here unchecked.
            self.c.error(node, path, shown(node), expected, f"{shown(node)} is not a number")
            return default
        value = int(node.value)
        if not lo <= value <= hi:
            self.c.error(node, path, value, expected, f"{value} is out of range")
            return default
        return value

    def boolean(self, node: yaml.Node | None, path: str, default: bool) -> bool:
        if node is None:
            return default
        if not isinstance(node, yaml.ScalarNode) or node.tag != BOOL_TAG:
            # 'yes'/'no' are deliberately not booleans here (YAML 1.1 pitfall).
            self.c.error(node, path, shown(node), "true or false",
                         f"{shown(node)} is not true or false")
            return default
        return str(node.value).lower() == "true"

    def time_of_day(self, node: yaml.Node | None, path: str, allow_24: bool = False
                    ) -> int | None:
        value = self.text(node, path, EXPECT_TIME)
        if value is None:
            return None
        minutes = parse_time(value, allow_24)
        if minutes is None:
            self.c.error(node, path, value, EXPECT_TIME + (" or 24:00" if allow_24 else ""),
                         f"{value!r} is not a time")
        return minutes

    def phone(self, node: yaml.Node | None, path: str, kind: str | None = None) -> str | None:
        """An E.164 number, parsed in the practice's country; must be a real dialable number."""
        expected = ("a dialable phone number in E.164 form, e.g. +16175550100 "
                    f"(country {self.country})")
        value = self.text(node, path, expected)
        if value is None:
            return None
        try:
            parsed = phonenumbers.parse(value, self.country)
        except phonenumbers.NumberParseException:
            self.c.error(node, path, value, expected, f"{value!r} is not a phone number")
            return None
        if not phonenumbers.is_valid_number(parsed):
            self.c.error(node, path, value, expected, f"{value!r} is not a dialable number")
            return None
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if kind is not None and node is not None:
            self.numbers.append((e164, kind, node, path))
        return e164

    def phones(self, node: yaml.Node | None, path: str, kind: str | None = None,
               among: frozenset[str] | None = None) -> tuple[str, ...]:
        """A list of E.164 numbers; with `among`, each must be one of those numbers."""
        out = []
        for i, item in enumerate(self.seq(node, path, "a list of phone numbers")):
            num = self.phone(item, child(path, i), kind)
            if num is not None and among is not None and num not in among:
                self.c.error(item, child(path, i), num,
                             "a clinician's phone or an overflow bridge_to number",
                             f"{num} is not a clinician's phone: the PBX dials only numbers "
                             "the rules name for the practice's clinicians")
            elif num is not None:
                out.append(num)
        return tuple(out)

    def local_datetime(self, node: yaml.Node | None, path: str) -> datetime | None:
        """An instant written as local time in the practice zone (or with an explicit offset)."""
        value = self.text(node, path, EXPECT_DATETIME)
        if value is None:
            return None
        parsed = None
        if DATETIME_RE.match(value):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                parsed = None
        if parsed is None:
            self.c.error(node, path, value, EXPECT_DATETIME, f"{value!r} is not a date and time")
            return None
        if not MIN_YEAR <= parsed.year <= MAX_YEAR:
            # Near years 1 and 9999 an offset or the zone moves the instant out of range.
            self.c.error(node, path, value, f"{EXPECT_DATETIME}, {EXPECT_YEARS}",
                         f"{value!r} is out of range")
            return None
        try:
            if parsed.tzinfo is None:
                note = wall_time_note(parsed, self.tz)
                if note is not None:
                    self.c.warn(node, path, value, "a local time that happens once, or an "
                                "explicit offset such as -04:00", note)
                return local_naive_to_instant(parsed, self.tz)
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):  # not expected within the years allowed
            self.c.error(node, path, value, f"{EXPECT_DATETIME}, {EXPECT_YEARS}",
                         f"{value!r} is out of range")
            return None

    def day(self, node: yaml.Node | None, path: str) -> date | None:
        value = self.text(node, path, "a date YYYY-MM-DD")
        if value is None:
            return None
        try:
            if DATE_RE.match(value):
                parsed = date.fromisoformat(value)
                if MIN_YEAR <= parsed.year <= MAX_YEAR:
                    return parsed
                self.c.error(node, path, value, f"a date YYYY-MM-DD, {EXPECT_YEARS}",
                             f"{value!r} is out of range")
                return None
        except ValueError:
            pass
        self.c.error(node, path, value, "a date YYYY-MM-DD", f"{value!r} is not a date")
        return None



def parse_time(value: str, allow_24: bool = False) -> int | None:
    """Minutes past midnight for 'HH:MM', or None ('25:00', '8', '8-17' are not times)."""
    match = TIME_RE.match(value)
    if not match:
        return None
    hh, mm = int(match.group(1)), int(match.group(2))
    if allow_24 and hh == 24 and mm == 0:
        return MINUTES_PER_DAY
    if hh > 23 or mm > 59:
        return None
    return hh * 60 + mm
